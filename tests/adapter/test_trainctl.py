"""trainctl end to end: a real host trainer, the real bus, trainctl as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bus_contracts.subjects import Subjects
from tests.conftest import Bus, HostFactory

pytestmark = pytest.mark.timeout(240)

QUICK = ["SPX", "-t", "1d", "--epochs", "2", "--start-date", "2012-01-01", "--device", "cpu"]


class Trainctl:
    def __init__(self, url: str, password: str, subjects: Subjects, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "NATS_URL": url,
            "NATS_USER": "backend",
            "NATS_PASSWORD": password,
            "TRAINING_SUBJECT_ROOT": subjects.root,
            "TRAINING_MODELS_DIR": str(tmp / "local-models"),
            "TRAINING_STATE_DIR": str(tmp / "state"),
            "COLUMNS": "120",
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backend_adapter.trainctl", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def json_lines(self, *args: str) -> tuple[int, list[dict[str, Any]]]:
        done = self("--json", *args)
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line]


@pytest.fixture
def trainctl(nats_bus: Bus, subjects: Subjects, tmp_path: Path) -> Trainctl:
    return Trainctl(nats_bus.url, nats_bus.passwords["backend"], subjects, tmp_path)


async def test_start_follow_and_query_as_json(
    host_trainer: HostFactory, trainctl: Trainctl, tmp_path: Path
) -> None:
    await host_trainer()
    code, lines = trainctl.json_lines("start", *QUICK, "--task-id", "cli-json")
    assert code == 0, lines
    assert lines[0]["type"] == "training.accepted"
    assert lines[0]["executor"] == "host"
    assert [line["seq"] for line in lines[1:]] == list(range(1, len(lines)))
    assert lines[-1]["type"] == "training.completed"

    code, (status,) = trainctl.json_lines("status", "cli-json")
    assert (code, status["state"]) == (0, "completed")
    code, (performance,) = trainctl.json_lines("performance", "cli-json")
    assert (code, performance["type"]) == (0, "training.performance")
    assert performance["test"]["accuracy"] == lines[-1]["result"]["test_accuracy"]
    code, (listing,) = trainctl.json_lines("jobs")
    assert code == 0 and [job["task_id"] for job in listing["jobs"]] == ["cli-json"]
    code, (health,) = trainctl.json_lines("health", "--detailed")
    assert (code, health["type"]) == (0, "training.health")
    code, (fetched,) = trainctl.json_lines("fetch-model", "cli-json", str(tmp_path / "fetched"))
    assert code == 0 and (Path(fetched["model_path"]) / "metadata.json").is_file()
    code, (error,) = trainctl.json_lines("fetch-model", "cli-json", str(tmp_path / "fetched"))
    assert code == 2 and "already exists" in error["error"]

    code, (error,) = trainctl.json_lines("stop", "cli-json")
    assert code == 6 and "already completed" in error["error"]
    code, (error,) = trainctl.json_lines("status", "no-such-job")
    assert code == 5 and "no-such-job" in error["error"]


async def test_human_output_detach_watch_and_cancel(
    host_trainer: HostFactory, trainctl: Trainctl
) -> None:
    await host_trainer()
    done = trainctl("start", *QUICK, "--task-id", "cli-human")
    assert done.returncode == 0, done.stderr
    assert "running on host" in done.stdout
    assert "completed: test accuracy" in done.stdout

    done = trainctl(
        "start", "SPX", "-t", "1d", "--epochs", "2000", "--task-id", "cli-long", "--detach"
    )
    assert done.returncode == 0 and "cli-long" in done.stdout
    watcher = subprocess.Popen(
        [sys.executable, "-m", "backend_adapter.trainctl", "watch", "cli-long"],
        env=trainctl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = trainctl("stop", "cli-long", "--reason", "test over")
    assert stopped.returncode == 0, stopped.stderr
    out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 4, out
    assert "cancelled: test over" in out

    status = trainctl("status", "cli-human")
    assert status.returncode == 0 and "completed" in status.stdout


def test_bad_input_names_the_field(trainctl: Trainctl) -> None:
    done = trainctl("start", "SPX", "-t", "1d", "--epochs", "0")
    assert done.returncode == 2
    assert "strategy.training.epochs" in done.stderr
    done = trainctl("start", "../etc", "-t", "1d")
    assert done.returncode == 2
    assert "symbols[0]" in done.stderr


def test_unreachable_host_for_health(nats_bus: Bus, subjects: Subjects, tmp_path: Path) -> None:
    # No host trainer on this root: health has nobody to ask.
    done = Trainctl(nats_bus.url, nats_bus.passwords["backend"], subjects, tmp_path)("health")
    assert done.returncode == 3
    assert done.stderr.strip().count("\n") == 0  # one line


def test_bus_down_trains_locally(subjects: Subjects, tmp_path: Path) -> None:
    trainctl = Trainctl("nats://127.0.0.1:9", "unused", subjects, tmp_path)
    # --detach cannot leave a job that lives in this process: it stays and says so.
    done = trainctl("--json", "start", *QUICK, "--task-id", "offline", "--detach")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert "--detach needs the bus" in done.stderr
    assert lines[0]["executor"] == "local"
    assert lines[-1]["type"] == "training.completed"
    code, (error,) = trainctl.json_lines("jobs")
    assert code == 3 and "not reachable" in error["error"]
