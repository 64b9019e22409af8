"""Faults injected for real: the host killed with -9, the nats-server restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from bus_contracts.codec import decode_event
from bus_contracts.messages.progress import (
    BatchProgress,
    Completed,
    EpochEnded,
    Failed,
    ProgressEvent,
)
from bus_contracts.subjects import Subjects
from tests.conftest import Bus, HostFactory
from tests.host.bus_helpers import ProgressCollector, quick_request, request_json

pytestmark = pytest.mark.timeout(240)


async def stored_history(nc: Client, subjects: Subjects, task_id: str) -> list[ProgressEvent]:
    """Everything the progress stream holds for one job, in stream order."""
    js = nc.jetstream()
    sub = await js.subscribe(
        subjects.progress(task_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    events: list[ProgressEvent] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=1.0)
            event = decode_event(msg.data)
            assert event is not None
            events.append(event)
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return events


async def test_killed_host_leaves_lost_job_and_history_survives(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    first = await host_trainer("host-a")
    progress = await ProgressCollector().start(backend_nc, subjects)
    await request_json(backend_nc, subjects.start, quick_request("done-before"))
    assert isinstance(await progress.wait_final("done-before", 120), Completed)
    await request_json(backend_nc, subjects.start, quick_request("orphan", epochs=500))
    await progress.wait_for("orphan", lambda e: isinstance(e, BatchProgress), 60)

    first.kill()
    await host_trainer("host-b")
    status, _ = await request_json(backend_nc, subjects.status("orphan"))
    assert status["state"] == "running"  # heartbeats are still recent
    await asyncio.sleep(3.5)  # lost_after_s of the fixture's hosts is 3
    status, _ = await request_json(backend_nc, subjects.status("orphan"))
    assert status["state"] == "lost"
    assert "host-a" in status["error"]["message"]

    earlier, _ = await request_json(backend_nc, subjects.status("done-before"))
    assert earlier["state"] == "completed"
    assert earlier["host_id"] == "host-a"
    performance, _ = await request_json(backend_nc, subjects.performance("done-before"))
    assert performance["training"]["epochs_run"] == 2
    listing, _ = await request_json(backend_nc, subjects.jobs, {"states": ["lost"]})
    assert [job["task_id"] for job in listing["jobs"]] == ["orphan"]


async def test_server_restart_mid_job(
    private_nats: Bus, subjects: Subjects, tmp_path: Path
) -> None:
    hosts = HostFactory(private_nats, subjects, tmp_path)
    await hosts()
    nc = await private_nats.connect("backend")
    try:
        progress = await ProgressCollector().start(nc, subjects)
        request = quick_request("survivor", epochs=150)
        request["start_date"] = "2000-01-01"
        await request_json(nc, subjects.start, request)
        await progress.wait_for(
            "survivor", lambda e: isinstance(e, EpochEnded) and e.metrics.epoch >= 5, 90
        )
        seen_before = len(progress.events["survivor"])

        await asyncio.to_thread(private_nats.server.restart)

        final = await progress.wait_final("survivor", 180)
        assert isinstance(final, Completed)
        assert len(progress.events["survivor"]) > seen_before  # live events resumed
        history = await stored_history(nc, subjects, "survivor")
        assert [event.seq for event in history] == list(range(1, final.seq + 1))
        status, _ = await request_json(nc, subjects.status("survivor"))
        assert status["state"] == "completed"
    finally:
        await nc.close()
        for host in hosts.started:
            host.stop()


async def test_sighup_raises_concurrency_for_the_next_jobs_and_sigterm_fails_them(
    host_trainer: HostFactory, backend_nc: Client, subjects: Subjects
) -> None:
    host = await host_trainer("host-a")  # max_concurrent_jobs 1 (the default)
    progress = await ProgressCollector().start(backend_nc, subjects)
    host.config_path.write_text("max_concurrent_jobs = 2\n")
    host.send(signal.SIGHUP)
    for _ in range(100):
        health, _ = await request_json(backend_nc, subjects.health, {})
        if health["max_concurrent_jobs"] == 2:
            break
        await asyncio.sleep(0.05)
    assert health["max_concurrent_jobs"] == 2

    for task_id in ("side-1", "side-2"):
        reply, _ = await request_json(
            backend_nc, subjects.start, quick_request(task_id, epochs=5000)
        )
        assert reply["state"] == "running", reply  # nobody waits: two may run now
    for task_id in ("side-1", "side-2"):
        await progress.wait_for(task_id, lambda e: isinstance(e, BatchProgress), 60)

    began = time.monotonic()
    code = await asyncio.to_thread(host.stop)
    assert code == 0
    assert time.monotonic() - began < 10
    for task_id in ("side-1", "side-2"):
        final = await progress.wait_final(task_id, 5)
        assert isinstance(final, Failed), final
        assert final.error.message == "host shutdown"
    kv = await backend_nc.jetstream().key_value(subjects.jobs_bucket)
    record = json.loads((await kv.get("side-1")).value or b"{}")
    assert (record["state"], record["error"]["message"]) == ("failed", "host shutdown")
