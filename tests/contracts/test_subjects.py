"""Subject and JetStream names hang off one root, and a task id can never escape it."""

from __future__ import annotations

import pytest

import bus_contracts as bc


def test_production_names() -> None:
    subjects = bc.DEFAULT_SUBJECTS
    assert (subjects.start, subjects.jobs, subjects.health) == (
        "training.start",
        "training.jobs",
        "training.health",
    )
    assert subjects.status("job-1") == "training.status.job-1"
    assert subjects.stop("job-1") == "training.stop.job-1"
    assert subjects.performance("job-1") == "training.performance.job-1"
    assert subjects.progress("job-1") == "training.progress.job-1"
    assert subjects.progress_wildcard == "training.progress.>"
    assert (subjects.jobs_bucket, subjects.progress_stream, subjects.models_bucket) == (
        "TRAINING_JOBS",
        "TRAINING_PROGRESS",
        "TRAINING_MODELS",
    )


def test_test_root_gives_its_own_names() -> None:
    subjects = bc.Subjects(root="t1a2b.training")
    assert subjects.start == "t1a2b.training.start"
    assert subjects.jobs_bucket == "T1A2B_TRAINING_JOBS"


@pytest.mark.parametrize("root", ["", "a..b", "a.>", "a.*", "a b", ".a"])
def test_bad_root_is_refused(root: str) -> None:
    with pytest.raises(ValueError, match="is not a dotted NATS token list"):
        bc.Subjects(root=root)


@pytest.mark.parametrize("task_id", ["a.b", "*", ">", "a b", "", "x" * 65, "..", "a/b"])
@pytest.mark.parametrize("subject", ["status", "stop", "performance", "progress"])
def test_task_id_that_could_widen_a_subject_is_refused(subject: str, task_id: str) -> None:
    with pytest.raises(ValueError, match="does not match"):
        getattr(bc.DEFAULT_SUBJECTS, subject)(task_id)


def test_check_task_id_returns_a_good_id() -> None:
    assert bc.check_task_id("A_z-09") == "A_z-09"
