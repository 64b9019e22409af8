"""The router in front of a real host trainer (``host-trainer serve`` subprocesses):
hung hosts, the circuit, 4xx answers, late acceptance, and host/local parity."""

from __future__ import annotations

import asyncio
import signal

import pytest

from bus_contracts.errors import Conflict
from bus_contracts.messages.jobs import ListJobs
from bus_contracts.messages.progress import BatchProgress, Completed, ProgressEvent
from bus_contracts.messages.status import TrainingStatus
from tests.conftest import HostFactory

from . import (
    FakeClock,
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

FALLBACK_REASONS = (
    "no_responders",
    "timeout",
    "server_error",
    "breaker_open",
    "bus_unreachable",
    "disabled",
)


def _shape(events: list[ProgressEvent]) -> list[str]:
    """Event types in order; batch events are throttled by time, so left out."""
    return [type(e).__name__ for e in events if not isinstance(e, BatchProgress)]


def _set_fields(status: TrainingStatus) -> set[str]:
    return {f for f in status.__struct_fields__ if getattr(status, f) not in (None, "", [], {})}


async def test_a_hung_host_opens_the_circuit_then_one_trial_closes_it(
    host_trainer: HostFactory, make_router: RouterFactory
) -> None:
    host = await host_trainer()
    clock = FakeClock()
    workers = Workers()
    router = await make_router(
        workers=workers,
        clock=clock,
        start_timeout_s=0.3,
        breaker_failure_threshold=2,
        breaker_recovery_s=30,
        local_max_concurrent_jobs=32,
    )
    await router.health()
    host.send(signal.SIGSTOP)
    try:
        for index in range(2):  # the host is hung: each start times out, then runs here
            accepted = await router.start(tiny_request(f"hung-{index}"))
            assert accepted.executor == "local"
        assert fallbacks(router, "timeout") == 2
        assert router.breaker.state == "open"
        before = decision_sum_s(router)
        accepted = await router.start(tiny_request("while-open"))
        assert accepted.executor == "local"
        assert fallbacks(router, "breaker_open") == 1
        assert decision_sum_s(router) - before < router.settings.start_timeout_s / 10
    finally:
        host.send(signal.SIGCONT)
    await router.health()  # the host answers again; the circuit is still open
    assert router.breaker.state == "open"

    clock.advance(30)
    burst = await asyncio.gather(*(router.start(tiny_request(f"burst-{i}")) for i in range(20)))
    on_host = [a.task_id for a in burst if a.executor == "host"]
    assert len(on_host) == 1  # exactly one trial reached the host
    assert fallbacks(router, "breaker_open") == 1 + 19
    assert router.breaker.state == "closed"  # type: ignore[comparison-overlap]
    assert routed(router, "host") == 1

    # The timed-out starts reached the host after it woke: it found them claimed
    # here and did not run them. Every task id ran in exactly one place.
    for index in range(2):
        assert (await router.status(f"hung-{index}")).executor == "local"
    hosted = await router.jobs(ListJobs(executor="host"))
    assert [job.task_id for job in hosted.jobs] == on_host
    local_ids = {f"hung-{i}" for i in range(2)} | {"while-open"}
    local_ids |= {a.task_id for a in burst if a.executor == "local"}
    assert sorted(workers.started) == sorted(local_ids)
    await router.stop(on_host[0], "test over")


async def test_a_4xx_answer_is_the_callers_error(
    host_trainer: HostFactory, make_router: RouterFactory
) -> None:
    await host_trainer()
    router = await make_router()
    first = await router.start(tiny_request("taken"))
    assert first.executor == "host"
    with pytest.raises(Conflict, match="different request") as info:
        await router.start(tiny_request("taken", seed=8))
    assert info.value.code == 409
    assert router.breaker.state == "closed"
    assert router.breaker.consecutive_failures == 0
    assert all(fallbacks(router, reason) == 0 for reason in FALLBACK_REASONS)
    assert routed(router, "local") == 0
    again = await router.start(tiny_request("taken"))  # a retry is idempotent
    assert (again.executor, again.created) == ("host", False)
    await router.stop("taken", "test over")


async def test_a_5xx_answer_counts_as_a_failure_and_the_job_runs_here(
    host_trainer: HostFactory, make_router: RouterFactory
) -> None:
    await host_trainer(max_queued_jobs="0")  # one job at a time, no queue: 503 when busy
    workers = Workers()
    router = await make_router(workers=workers, breaker_failure_threshold=2)
    busy = await router.start(tiny_request("busy"))
    assert busy.executor == "host"
    overflow = await router.start(tiny_request("overflow"))
    assert overflow.executor == "local"
    assert fallbacks(router, "server_error") == 1
    assert router.breaker.consecutive_failures == 1

    async def ran_here() -> bool:
        return workers.started == ["overflow"]

    await eventually(ran_here)
    await router.stop("busy", "test over")


async def test_a_cancelled_start_is_not_a_failure(
    host_trainer: HostFactory, make_router: RouterFactory
) -> None:
    host = await host_trainer()
    router = await make_router(start_timeout_s=5, breaker_failure_threshold=1)
    host.send(signal.SIGSTOP)
    try:
        start = asyncio.create_task(router.start(tiny_request("impatient")))
        await asyncio.sleep(0.2)
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
    finally:
        host.send(signal.SIGCONT)
    assert router.breaker.state == "closed"  # threshold 1, yet closed
    assert router.breaker.consecutive_failures == 0
    assert routed(router, "host") == routed(router, "local") == 0


async def test_a_job_the_host_accepted_first_is_never_run_here(
    host_trainer: HostFactory, make_router: RouterFactory
) -> None:
    host = await host_trainer()
    router = await make_router()
    accepted = await router.start(tiny_request("first-come"))
    assert accepted.executor == "host"
    workers = Workers()
    fallback = await make_router(workers=workers, use_host=False)
    again = await fallback.start(tiny_request("first-come"))
    assert (again.executor, again.host_id, again.created) == ("host", host.host_id, False)
    assert workers.started == []
    await fallback.stop("first-come", "test over")  # reaches the job on the host

    async def cancelled() -> bool:
        return (await router.status("first-come")).state == "cancelled"

    await eventually(cancelled, 20)


async def test_the_same_request_gives_the_same_result_on_the_host_and_here(
    host_trainer: HostFactory, make_router: RouterFactory
) -> None:
    await host_trainer()
    router = await make_router()
    here = await make_router(use_host=False)
    on_host = await router.start(tiny_request("on-host", seed=11))
    on_local = await here.start(tiny_request("on-local", seed=11))
    assert (on_host.executor, on_local.executor) == ("host", "local")
    host_events, local_events = await asyncio.gather(
        collect(router.progress("on-host"), 180), collect(here.progress("on-local"), 180)
    )
    for events in (host_events, local_events):
        assert_gapless(events)
        assert isinstance(events[-1], Completed)
    assert _shape(host_events) == _shape(local_events)

    # Both answered by the host trainer (it reads the registry for the local job).
    host_perf = await router.performance("on-host")
    local_perf = await router.performance("on-local")
    assert (host_perf.executor, local_perf.executor) == ("host", "local")
    assert host_perf.test == local_perf.test
    assert host_perf.model == local_perf.model
    assert [(h.train_loss, h.val_loss) for h in host_perf.history] == [
        (h.train_loss, h.val_loss) for h in local_perf.history
    ]
    assert host_perf.training.final_val_loss == local_perf.training.final_val_loss
    assert host_perf.resources.device == local_perf.resources.device == "cpu"

    host_status = await router.status("on-host")
    local_status = await router.status("on-local")
    assert _set_fields(host_status) == _set_fields(local_status)
    assert host_status.result is not None and local_status.result is not None
    assert host_status.result.test_accuracy == local_status.result.test_accuracy
    assert host_status.result.artifact_name and local_status.result.artifact_name
