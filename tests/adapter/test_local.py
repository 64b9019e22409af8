"""The in-container fallback executor, with and without the bus."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from backend_adapter import LocalBus, LocalExecutor, follow_progress
from bus_contracts.errors import Conflict
from bus_contracts.messages.progress import Cancelled, Completed, Failed, Started
from bus_contracts.subjects import Subjects
from job_runtime import JobRecord, JobRegistry, request_digest

from . import Workers, assert_gapless, collect, eventually, router_settings, tiny_request


@pytest.fixture
async def workers() -> Workers:
    return Workers()


@pytest.fixture
async def hanging(
    subjects: Subjects, tmp_path: Path, workers: Workers
) -> AsyncIterator[LocalExecutor]:
    executor = LocalExecutor(router_settings(subjects, tmp_path), worker_factory=workers)
    try:
        yield executor
    finally:
        await executor.aclose()


@pytest.fixture
async def bus(backend_nc: Client, subjects: Subjects) -> LocalBus:
    js = backend_nc.jetstream()
    return LocalBus(js=js, registry=await JobRegistry.open(js, subjects))


async def _wait_state(executor: LocalExecutor, task_id: str, state: str) -> None:
    async def reached() -> bool:
        return executor.status(task_id).state == state

    await eventually(reached)


async def test_an_in_process_job_trains_on_the_cpu_with_the_hosts_shapes(
    subjects: Subjects, tmp_path: Path
) -> None:
    executor = LocalExecutor(router_settings(subjects, tmp_path))
    try:
        accepted = await executor.start(tiny_request("in-process", device="cuda"))
        assert accepted.executor == "local"
        assert accepted.device == "cpu"  # a GPU request must not fail in the container
        assert accepted.host_id == f"local:{socket.gethostname()}"
        assert accepted.progress_subject == subjects.progress("in-process")
        events = await collect(
            follow_progress("in-process", events=executor.events("in-process")), 120
        )
        assert_gapless(events)
        assert isinstance(events[-1], Completed), events[-1]
        started = next(e for e in events if isinstance(e, Started))
        assert (started.executor, started.device) == ("local", "cpu")
        status = executor.status("in-process")
        assert status.state == "completed"
        assert status.executor == "local"
        assert status.device == "cpu"
        assert status.result is not None and status.result.epochs_run == 2
        assert status.result.artifact_name is None  # no bus, no object store
        performance = executor.performance("in-process")
        assert performance.resources.device == "cpu"
        assert performance.test.samples > 0
        model_dir = executor.model_dir("in-process")
        assert model_dir is not None and (model_dir / "metadata.json").is_file()
    finally:
        await executor.aclose()


async def test_stop_ends_an_in_process_job_as_cancelled(hanging: LocalExecutor) -> None:
    await hanging.start(tiny_request("to-stop"))
    await _wait_state(hanging, "to-stop", "running")
    status = await hanging.stop("to-stop", "changed my mind")
    assert status.state == "running"
    events = await collect(follow_progress("to-stop", events=hanging.events("to-stop")), 10)
    assert_gapless(events)
    assert isinstance(events[-1], Cancelled)
    assert events[-1].reason == "changed my mind"
    assert hanging.status("to-stop").state == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        await hanging.stop("to-stop", "again")
    with pytest.raises(Conflict, match="performance exists once it completed"):
        hanging.performance("to-stop")


async def test_jobs_queue_first_in_first_out(hanging: LocalExecutor, workers: Workers) -> None:
    first = await hanging.start(tiny_request("first"))
    second = await hanging.start(tiny_request("second"))
    third = await hanging.start(tiny_request("third"))
    assert (first.state, first.queue_position) == ("running", 0)
    assert (second.state, second.queue_position) == ("queued", 1)
    assert (third.state, third.queue_position) == ("queued", 2)
    assert hanging.status("third").queue_position == 2
    cancelled = await hanging.stop("second", "not needed")
    assert cancelled.state == "cancelled"
    assert hanging.status("third").queue_position == 1
    await _wait_state(hanging, "first", "running")
    await hanging.stop("first", "make room")
    await _wait_state(hanging, "third", "running")
    assert workers.started == ["first", "third"]
    await hanging.aclose()
    third_events = hanging.events("third").events
    assert isinstance(third_events[-1], Failed)
    assert third_events[-1].error.message == "backend shutting down"


async def test_a_retry_of_the_same_request_returns_the_same_job(hanging: LocalExecutor) -> None:
    request = tiny_request("retried")
    await hanging.start(request)
    again = await hanging.start(request)
    assert again.created is False
    assert again.executor == "local"
    with pytest.raises(Conflict, match="different request"):
        await hanging.start(tiny_request("retried", epochs=3))


async def test_a_claim_that_finds_a_host_job_follows_it_instead_of_running_it(
    bus: LocalBus, hanging: LocalExecutor, workers: Workers
) -> None:
    request = tiny_request("host-was-late")
    host_record = JobRecord(
        task_id="host-was-late",
        request=request,
        request_digest=request_digest(request),
        state="running",
        executor="host",
        owner="host-a",
        device="cuda:0",
    )
    await bus.registry.claim(host_record)
    accepted = await hanging.start(request, bus)
    assert accepted.executor == "host"
    assert accepted.host_id == "host-a"
    assert accepted.device == "cuda:0"
    assert accepted.created is False
    assert workers.started == []
    assert not hanging.has("host-was-late")
    with pytest.raises(Conflict, match="different request"):
        await hanging.start(tiny_request("host-was-late", seed=8), bus)


async def test_a_local_job_is_claimed_heartbeated_and_stopped_through_the_registry(
    bus: LocalBus, hanging: LocalExecutor, workers: Workers
) -> None:
    # (bus before hanging: the executor must close before the bus connection does)
    accepted = await hanging.start(tiny_request("claimed", device="mps"), bus)
    assert accepted.created and accepted.executor == "local"
    record = await bus.registry.get("claimed")
    assert record is not None
    assert (record.executor, record.owner) == ("local", hanging.owner)
    assert record.request.device == "mps"  # the record keeps the request as sent
    await _wait_state(hanging, "claimed", "running")
    assert workers.requests[0].device == "cpu"
    first_beat = (await bus.registry.get("claimed")).heartbeat_at  # type: ignore[union-attr]
    await asyncio.sleep(0.5)
    record = await bus.registry.get("claimed")
    assert record is not None and record.heartbeat_at > first_beat
    # Someone else (another backend, a host) asks for a stop through the registry.
    await bus.registry.update(
        "claimed", lambda r: msgspec.structs.replace(r, stop_requested="from elsewhere")
    )
    events = await collect(follow_progress("claimed", events=hanging.events("claimed")), 10)
    assert isinstance(events[-1], Cancelled)
    assert events[-1].reason == "from elsewhere"

    async def recorded_final() -> bool:
        record = await bus.registry.get("claimed")
        return record is not None and record.is_final

    await eventually(recorded_final)
    final = await bus.registry.get("claimed")
    assert final is not None and final.state == "cancelled"
