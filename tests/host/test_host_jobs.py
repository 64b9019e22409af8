"""A host trainer driven with raw JSON over a real nats-server, training for real
in worker processes: the life of a job, concurrency, stop, crashes, replay."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from bus_contracts.codec import decode_event
from bus_contracts.messages.progress import (
    BatchProgress,
    Cancelled,
    Completed,
    EpochEnded,
    Failed,
    PhaseChanged,
    Queued,
    Started,
)
from bus_contracts.subjects import Subjects
from tests.conftest import HostFactory
from tests.host.bus_helpers import ProgressCollector, quick_request, request_json, seqs

pytestmark = pytest.mark.timeout(180)


async def test_raw_json_job_runs_to_completion(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    host = await host_trainer()
    progress = await ProgressCollector().start(backend_nc, subjects)

    began = time.perf_counter()
    accepted, reply = await request_json(
        backend_nc,
        subjects.start,
        {
            "symbols": ["SPX"],
            "timeframe": "1d",
            "task_id": "first-job",
            "strategy": {"training": {"epochs": 3}},
        },
    )
    answered_s = time.perf_counter() - began
    assert reply.headers is None or "Nats-Service-Error-Code" not in reply.headers
    assert accepted["type"] == "training.accepted"
    assert accepted["task_id"] == "first-job"
    assert accepted["executor"] == "host"
    assert accepted["progress_subject"] == subjects.progress("first-job")
    # Accepted before any training happened: well under the time one epoch takes.
    assert answered_s < 1.0

    final = await progress.wait_final("first-job", timeout_s=120)
    events = progress.events["first-job"]
    assert isinstance(final, Completed), final
    assert seqs(events) == list(range(1, len(events) + 1))
    assert isinstance(events[0], Queued)
    assert any(isinstance(e, Started) for e in events)
    assert {e.phase for e in events if isinstance(e, PhaseChanged)} >= {
        "loading_data",
        "training",
        "saving",
    }
    assert [e.metrics.epoch for e in events if isinstance(e, EpochEnded)] == [1, 2, 3]
    percents = [e.percent for e in events]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0

    status, _ = await request_json(backend_nc, subjects.status("first-job"))
    assert status["state"] == "completed"
    assert status["result"]["test_accuracy"] == final.result.test_accuracy
    performance, _ = await request_json(backend_nc, subjects.performance("first-job"))
    assert performance["type"] == "training.performance"
    assert performance["training"]["epochs_run"] == 3
    assert len(performance["history"]) == 3
    assert sum(map(sum, performance["test"]["confusion_matrix"])) == performance["test"]["samples"]

    model_dir = Path(performance["artifact"]["model_path"])
    assert model_dir.is_dir()
    assert model_dir.is_relative_to(host.models_dir)
    object_name = performance["artifact"]["object_name"]
    store = await backend_nc.jetstream().object_store(subjects.models_bucket)
    info = await store.get_info(object_name)
    assert info.size > 0


async def test_five_jobs_two_at_a_time(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    await host_trainer(max_concurrent_jobs="2")
    progress = await ProgressCollector().start(backend_nc, subjects)
    ids = [f"job-{n}" for n in range(5)]

    replies = await asyncio.gather(
        *(request_json(backend_nc, subjects.start, quick_request(i)) for i in ids)
    )
    positions = sorted(reply["queue_position"] for reply, _ in replies)
    assert [reply["state"] for reply, _ in replies].count("running") <= 2
    assert positions[-1] >= 1  # later arrivals were told their place in the queue

    finals = await asyncio.gather(*(progress.wait_final(i, timeout_s=150) for i in ids))
    assert all(isinstance(f, Completed) for f in finals), finals
    spans = []
    for task_id in ids:
        events = progress.events[task_id]
        started = next(e for e in events if isinstance(e, Started)).timestamp
        spans.append((started, events[-1].timestamp))
    for moment, _ in spans:
        overlapping = sum(1 for start, end in spans if start <= moment < end)
        assert overlapping <= 2


async def test_stop_running_queued_and_finished(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    await host_trainer(max_concurrent_jobs="1")
    progress = await ProgressCollector().start(backend_nc, subjects)
    await request_json(backend_nc, subjects.start, quick_request("long", epochs=500))
    await request_json(backend_nc, subjects.start, quick_request("waiting"))
    started = await progress.wait_for("long", lambda e: isinstance(e, BatchProgress), 60)
    assert isinstance(started, BatchProgress)
    pid = next(e for e in progress.events["long"] if isinstance(e, Started)).pid
    assert pid is not None and psutil.pid_exists(pid)

    queued_stop, _ = await request_json(
        backend_nc, subjects.stop("waiting"), {"reason": "not needed"}
    )
    assert queued_stop["state"] == "cancelled"
    began = time.monotonic()
    await request_json(backend_nc, subjects.stop("long"), {"reason": "enough"})
    final = await progress.wait_final("long", timeout_s=10)
    assert time.monotonic() - began < 2.0
    assert isinstance(final, Cancelled) and final.reason == "enough"
    await asyncio.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    waiting_events = progress.events["waiting"]
    assert not any(isinstance(e, Started) for e in waiting_events)
    assert isinstance(waiting_events[-1], Cancelled)

    again, reply = await request_json(backend_nc, subjects.stop("long"))
    assert again["code"] == 409
    assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "409"


async def test_killed_worker_fails_only_its_job(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    await host_trainer(max_concurrent_jobs="2")
    progress = await ProgressCollector().start(backend_nc, subjects)
    await request_json(backend_nc, subjects.start, quick_request("victim", epochs=500))
    await request_json(backend_nc, subjects.start, quick_request("survivor", epochs=3))
    await progress.wait_for("victim", lambda e: isinstance(e, BatchProgress), 60)
    pid = next(e for e in progress.events["victim"] if isinstance(e, Started)).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    failed = await progress.wait_final("victim", timeout_s=20)
    assert isinstance(failed, Failed)
    assert "SIGKILL" in failed.error.message
    assert isinstance(await progress.wait_final("survivor", timeout_s=120), Completed)
    health, _ = await request_json(backend_nc, subjects.health, {})
    assert health["status"] in {"ok", "degraded"}


async def test_late_subscriber_replays_whole_history(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    await host_trainer()
    progress = await ProgressCollector().start(backend_nc, subjects)
    await request_json(backend_nc, subjects.start, quick_request("replayed"))
    await progress.wait_final("replayed", timeout_s=120)
    live = progress.events["replayed"]

    js = backend_nc.jetstream()
    sub = await js.subscribe(
        subjects.progress("replayed"), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    replayed = []
    while len(replayed) < len(live):
        msg = await sub.next_msg(timeout=5)
        replayed.append(decode_event(msg.data))
    await sub.unsubscribe()
    assert [(e.seq, type(e)) for e in replayed if e] == [(e.seq, type(e)) for e in live]


def test_a_request_and_its_wire_copy_have_one_identity() -> None:
    from bus_contracts.codec import decode_request, encode
    from bus_contracts.messages.start import StartTraining
    from job_runtime.records import request_digest

    built = StartTraining(task_id="same", symbols=["SPX"], timeframe="1d")
    received = decode_request(encode(built), StartTraining)
    assert request_digest(built) == request_digest(received)
    assert request_digest(built) != request_digest(
        StartTraining(task_id="same", symbols=["IXIC"], timeframe="1d")
    )


async def test_unknown_symbol_is_refused_at_once_naming_what_exists(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    await host_trainer()
    reply, msg = await request_json(
        backend_nc, subjects.start, quick_request("nodata", symbols=["NOPE"])
    )
    assert reply["code"] == 404
    assert reply["field"] == "symbols"
    assert "no 1d data for NOPE" in reply["message"]
    assert "SPX 1d" in reply["message"]
    assert "/" not in reply["message"]  # no host paths to the caller
    assert msg.headers is not None and msg.headers["Nats-Service-Error-Code"] == "404"
    missing, _ = await request_json(backend_nc, subjects.status("nodata"))
    assert missing["code"] == 404  # nothing was queued


async def test_a_job_over_the_hosts_time_limit_is_ended(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    await host_trainer(max_job_duration_s="4")
    progress = await ProgressCollector().start(backend_nc, subjects)
    await request_json(backend_nc, subjects.start, quick_request("endless", epochs=10_000))
    final = await progress.wait_final("endless", timeout_s=60)
    assert isinstance(final, Failed)
    assert "limit of 4 s" in final.error.message
