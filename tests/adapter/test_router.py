"""The router with no host trainer: it trains here, at once, and looks the same."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import pytest
from nats.aio.client import Client

from backend_adapter import HostUnavailable, follow_progress
from bus_contracts.errors import BadRequest, Conflict, NotFound
from bus_contracts.messages.jobs import ListJobs
from bus_contracts.messages.progress import Cancelled, Completed, Started
from bus_contracts.strategy import Strategy, TrainingSpec
from bus_contracts.subjects import Subjects
from embedded_nats import BusEndpoint
from tests.conftest import Bus

from . import (
    RouterFactory,
    Workers,
    assert_gapless,
    collect,
    decision_sum_s,
    eventually,
    fallbacks,
    routed,
    tiny_request,
)


async def test_no_host_trainer_means_local_at_once_and_it_looks_like_a_host_job(
    make_router: RouterFactory, backend_nc: Client, subjects: Subjects, tmp_path: Path
) -> None:
    router = await make_router()
    assert router.connected
    accepted = await router.start(tiny_request())  # no task id: the router sets one
    task_id = accepted.task_id
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)
    assert (accepted.executor, accepted.device) == ("local", "cpu")
    assert accepted.progress_subject == subjects.progress(task_id)
    assert fallbacks(router, "no_responders") == 1
    assert decision_sum_s(router) < router.settings.start_timeout_s / 10

    # Progress flows on the subject a host would use, seq 1..n, no gap.
    events = await collect(
        follow_progress(task_id, js=backend_nc.jetstream(), subjects=subjects), 120
    )
    assert_gapless(events)
    assert isinstance(events[-1], Completed)
    started = next(e for e in events if isinstance(e, Started))
    assert (started.executor, started.device) == ("local", "cpu")

    # Another backend, with no host trainer up, answers from the registry.
    other = await make_router()

    async def recorded() -> bool:
        return (await other.status(task_id)).state == "completed"

    await eventually(recorded)
    status = await other.status(task_id)
    assert (status.executor, status.host_id) == ("local", accepted.host_id)
    assert status.result is not None
    assert status.result.artifact_name is not None
    assert status == await router.status(task_id)  # registry and memory agree
    performance = await other.performance(task_id)
    assert performance == await router.performance(task_id)
    replayed = await collect(other.progress(task_id), 10)
    assert [e.seq for e in replayed] == [e.seq for e in events]
    model_dir = await other.fetch_model(task_id, tmp_path / "fetched")
    assert (model_dir / "metadata.json").is_file()
    assert model_dir.name == Path(status.result.model_path).name
    listing = await other.jobs()
    assert [job.task_id for job in listing.jobs] == [task_id]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("how", ["server_stopped", "closed_port"])
async def test_with_nats_down_everything_works_in_process(
    how: str, private_nats: Bus, make_router: RouterFactory
) -> None:
    endpoint = private_nats.endpoint("backend")
    if how == "server_stopped":
        private_nats.server.stop()
    else:
        endpoint = BusEndpoint(f"nats://127.0.0.1:{_closed_port()}", "backend", "x")
    workers = Workers()
    began = time.perf_counter()
    router = await make_router(endpoint=endpoint, workers=workers)
    opened_s = time.perf_counter() - began
    assert not router.connected
    assert opened_s < router.settings.connect_timeout_s

    accepted = await router.start(tiny_request("offline", device="cuda"))
    assert (accepted.executor, accepted.device) == ("local", "cpu")
    assert fallbacks(router, "bus_unreachable") == 1
    assert decision_sum_s(router) < router.settings.start_timeout_s / 10

    async def running() -> bool:
        return (await router.status("offline")).state == "running"

    await eventually(running)
    follower = asyncio.create_task(collect(router.progress("offline"), 10))
    await router.stop("offline", "enough")
    events = await follower
    assert_gapless(events)
    assert isinstance(events[-1], Cancelled)
    assert (await router.status("offline")).state == "cancelled"
    listing = await router.jobs(ListJobs(states=["cancelled"]))
    assert [job.task_id for job in listing.jobs] == ["offline"]
    with pytest.raises(HostUnavailable, match="not reachable"):
        await router.status("somebody-elses")
    with pytest.raises(HostUnavailable):
        await router.health()


async def test_a_bus_lost_after_connecting_means_local_at_once(
    private_nats: Bus, make_router: RouterFactory
) -> None:
    workers = Workers()
    router = await make_router(endpoint=private_nats.endpoint("backend"), workers=workers)
    assert router.connected
    private_nats.server.stop()

    async def disconnected() -> bool:
        return not router.connected

    await eventually(disconnected)
    accepted = await router.start(tiny_request("while-down"))
    assert accepted.executor == "local"
    assert fallbacks(router, "bus_unreachable") == 1
    assert decision_sum_s(router) < router.settings.start_timeout_s / 10

    private_nats.server.start()

    async def reconnected() -> bool:
        return router.connected

    await eventually(reconnected, 15)
    again = await router.start(tiny_request("after-restart"))
    assert again.executor == "local"
    assert fallbacks(router, "no_responders") == 1
    assert (await router.status("after-restart")).executor == "local"


async def test_host_disabled_runs_locally_but_still_claims_and_publishes(
    make_router: RouterFactory, backend_nc: Client, subjects: Subjects
) -> None:
    workers = Workers()
    router = await make_router(workers=workers, use_host=False)
    accepted = await router.start(tiny_request("disabled"))
    assert accepted.executor == "local"
    assert fallbacks(router, "disabled") == 1
    assert fallbacks(router, "no_responders") == 0
    other = await make_router()
    status = await other.status("disabled")
    assert status.executor == "local"


async def test_an_invalid_request_is_refused_before_routing(make_router: RouterFactory) -> None:
    router = await make_router()
    bad = tiny_request("bad")
    bad = type(bad)(
        task_id="bad",
        symbols=["SPX"],
        timeframe="1d",
        strategy=Strategy(training=TrainingSpec(epochs=0)),
    )
    with pytest.raises(BadRequest, match=r"strategy\.training\.epochs") as info:
        await router.start(bad)
    assert info.value.field == "strategy.training.epochs"
    assert routed(router, "local") == routed(router, "host") == 0
    with pytest.raises(BadRequest, match="task id"):
        await router.status("not a task id")


async def test_unknown_jobs_are_not_found(make_router: RouterFactory) -> None:
    router = await make_router()
    with pytest.raises(NotFound):
        await router.status("nobody")
    with pytest.raises(NotFound):
        await router.stop("nobody")
    with pytest.raises(NotFound):
        await router.performance("nobody")
    with pytest.raises(NotFound):
        await collect(router.progress("nobody"), 5)
    with pytest.raises(HostUnavailable, match="no responders"):
        await router.health()


async def test_a_stop_from_another_backend_goes_through_the_registry(
    make_router: RouterFactory,
) -> None:
    owner = await make_router(workers=Workers())
    await owner.start(tiny_request("shared"))
    other = await make_router()

    async def running() -> bool:
        return (await other.status("shared")).state == "running"

    await eventually(running)
    await other.stop("shared", "stopped from elsewhere")
    events = await collect(owner.progress("shared"), 10)
    assert isinstance(events[-1], Cancelled)
    assert events[-1].reason == "stopped from elsewhere"

    async def cancelled() -> bool:
        return (await other.status("shared")).state == "cancelled"

    await eventually(cancelled)
    with pytest.raises(Conflict, match="already cancelled"):
        await other.stop("shared")
    with pytest.raises(Conflict, match="once it completed"):
        await other.performance("shared")


async def test_a_router_that_started_without_nats_connects_when_it_appears(
    private_nats: Bus, make_router: RouterFactory
) -> None:
    private_nats.server.stop()
    workers = Workers()
    router = await make_router(
        endpoint=private_nats.endpoint("backend"), workers=workers, reconnect_interval_s=0.1
    )
    assert not router.connected
    early = await router.start(tiny_request("before"))
    assert early.executor == "local"
    private_nats.server.start()

    async def connected() -> bool:
        return router.connected

    await eventually(connected)
    later = await router.start(tiny_request("after"))
    assert later.executor == "local"
    assert fallbacks(router, "no_responders") == 1  # it asked the bus this time
    assert (await router.status("before")).state == "running"  # still answered from memory
