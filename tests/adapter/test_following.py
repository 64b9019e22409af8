"""Following a job's progress through JetStream: history, then live, each seq once."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from nats.aio.client import Client

from backend_adapter import follow_progress
from bus_contracts.codec import encode
from bus_contracts.messages.common import ErrorInfo, ResultSummary
from bus_contracts.messages.progress import (
    Completed,
    Failed,
    PhaseChanged,
    ProgressEvent,
    Queued,
    Started,
)
from bus_contracts.subjects import Subjects
from job_runtime import JobRegistry

from . import collect

SUMMARY = ResultSummary(
    test_accuracy=0.5,
    test_macro_f1=0.4,
    baseline_accuracy=0.4,
    epochs_run=2,
    early_stopped=False,
    duration_s=1.0,
    model_version="v1",
    model_path="models/x/SPX_1d_v1",
)


def _events(task_id: str) -> list[ProgressEvent]:
    now = dt.datetime.now(dt.UTC)
    return [
        Queued(
            task_id=task_id,
            timestamp=now,
            seq=1,
            percent=0,
            queue_position=1,
            executor="local",
            host_id="x",
        ),
        Started(
            task_id=task_id,
            timestamp=now,
            seq=2,
            percent=0,
            executor="local",
            host_id="x",
            device="cpu",
        ),
        PhaseChanged(task_id=task_id, timestamp=now, seq=3, percent=5, phase="loading_data"),
        Failed(
            task_id=task_id,
            timestamp=now,
            seq=4,
            percent=5,
            error=ErrorInfo(code=404, message="no data"),
        ),
    ]


async def _publish(nc: Client, subjects: Subjects, task_id: str, data: bytes) -> None:
    await nc.jetstream().publish(subjects.progress(task_id), data)


async def test_a_late_follower_replays_everything_in_order_without_duplicates(
    backend_nc: Client, subjects: Subjects
) -> None:
    js = backend_nc.jetstream()
    await JobRegistry.open(js, subjects)
    task_id = "late-follower"
    events = _events(task_id)
    # seq 2 published twice (a retry that escaped de-duplication), a newer
    # peer's event type in the middle, and another job's event on its own subject.
    sequence = [events[0], events[1], events[1], events[2]]
    for event in sequence:
        await _publish(backend_nc, subjects, task_id, encode(event))
    await _publish(
        backend_nc,
        subjects,
        task_id,
        b'{"type":"training.future_thing","task_id":"late-follower","seq":3}',
    )
    await _publish(backend_nc, subjects, task_id, encode(events[3]))
    await _publish(backend_nc, subjects, "other-job", encode(_events("other-job")[0]))

    seen = await collect(follow_progress(task_id, js=js, subjects=subjects), timeout_s=10)
    assert [e.seq for e in seen] == [1, 2, 3, 4]
    assert [type(e) for e in seen] == [Queued, Started, PhaseChanged, Failed]

    resumed = await collect(
        follow_progress(task_id, js=js, subjects=subjects, after_seq=2), timeout_s=10
    )
    assert [e.seq for e in resumed] == [3, 4]


async def test_a_follower_gets_history_then_live_events(
    backend_nc: Client, subjects: Subjects
) -> None:
    js = backend_nc.jetstream()
    await JobRegistry.open(js, subjects)
    task_id = "live-follower"
    now = dt.datetime.now(dt.UTC)
    events = _events(task_id)[:3]
    await _publish(backend_nc, subjects, task_id, encode(events[0]))
    follower = asyncio.create_task(collect(follow_progress(task_id, js=js, subjects=subjects)))
    await asyncio.sleep(0.2)
    for event in events[1:]:
        await _publish(backend_nc, subjects, task_id, encode(event))
    assert not follower.done()  # no final event yet
    await _publish(backend_nc, subjects, task_id, encode(events[2]))  # a duplicate
    completed = Completed(task_id=task_id, seq=4, timestamp=now, percent=100, result=SUMMARY)
    await _publish(backend_nc, subjects, task_id, encode(completed))
    seen = await asyncio.wait_for(follower, 10)
    assert [e.seq for e in seen] == [1, 2, 3, 4]
    assert isinstance(seen[-1], Completed)


async def test_an_idle_check_ends_a_job_that_will_never_finish(
    backend_nc: Client, subjects: Subjects
) -> None:
    js = backend_nc.jetstream()
    await JobRegistry.open(js, subjects)
    task_id = "lost-job"
    await _publish(backend_nc, subjects, task_id, encode(_events(task_id)[0]))
    checks = 0

    async def lost() -> bool:
        nonlocal checks
        checks += 1
        return checks >= 2

    seen: list[ProgressEvent] = []
    source = follow_progress(task_id, js=js, subjects=subjects, idle_s=0.1, on_idle=lost)
    async with contextlib.aclosing(source):
        async for event in source:
            seen.append(event)
    assert [e.seq for e in seen] == [1]
    assert checks == 2
