"""The circuit breaker, on an injected clock: no real waiting."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from backend_adapter import CircuitBreaker, RouterMetrics
from backend_adapter.breaker import BreakerState

from . import FakeClock


def make(
    threshold: int = 3, recovery_s: float = 30.0
) -> tuple[CircuitBreaker, FakeClock, list[tuple[BreakerState, BreakerState]]]:
    clock = FakeClock()
    seen: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        failure_threshold=threshold,
        recovery_s=recovery_s,
        clock=clock,
        on_transition=lambda old, new: seen.append((old, new)),
    )
    return breaker, clock, seen


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state, read through a call (so a type checker does not narrow it)."""
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        ticket = breaker.try_acquire()
        assert ticket is not None
        ticket.failure()


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _, seen = make(threshold=3)
    fail(breaker, 2)
    ticket = breaker.try_acquire()
    assert ticket is not None
    ticket.success()  # a success in between resets the count
    fail(breaker, 2)
    assert state_of(breaker) == "closed"
    fail(breaker, 1)
    assert state_of(breaker) == "open"
    assert breaker.try_acquire() is None
    assert seen == [("closed", "open")]


def test_refuses_until_recovery_then_one_trial_closes() -> None:
    breaker, clock, seen = make(threshold=1, recovery_s=30)
    fail(breaker, 1)
    clock.advance(29.9)
    assert breaker.try_acquire() is None
    assert breaker.retry_after_s() == pytest.approx(0.1)
    clock.advance(0.1)
    trial = breaker.try_acquire()
    assert trial is not None and trial.trial
    assert state_of(breaker) == "half_open"
    assert breaker.try_acquire() is None  # everyone else waits for the trial
    trial.success()
    assert state_of(breaker) == "closed"
    assert all(breaker.try_acquire() is not None for _ in range(5))
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_trial_failure_reopens_and_restarts_the_timer() -> None:
    breaker, clock, _ = make(threshold=1, recovery_s=30)
    fail(breaker, 1)
    clock.advance(30)
    trial = breaker.try_acquire()
    assert trial is not None
    clock.advance(5)  # the trial took a while
    trial.failure()
    assert state_of(breaker) == "open"
    clock.advance(29)
    assert breaker.try_acquire() is None
    clock.advance(1)
    assert breaker.try_acquire() is not None


async def test_exactly_one_of_20_concurrent_callers_gets_the_trial() -> None:
    breaker, clock, _ = make(threshold=1, recovery_s=30)
    fail(breaker, 1)
    clock.advance(30)
    admitted: list[int] = []
    gate = asyncio.Event()

    async def call(index: int) -> str:
        ticket = breaker.try_acquire()
        if ticket is None:
            return "refused"
        admitted.append(index)
        await gate.wait()  # the trial is in flight while the others arrive
        ticket.success()
        return "trial"

    calls = [asyncio.create_task(call(i)) for i in range(20)]
    await asyncio.sleep(0.01)
    gate.set()
    outcomes = await asyncio.gather(*calls)
    assert outcomes.count("trial") == 1
    assert outcomes.count("refused") == 19
    assert len(admitted) == 1
    assert state_of(breaker) == "closed"


def test_release_keeps_the_state_and_frees_the_trial_slot() -> None:
    breaker, clock, seen = make(threshold=2, recovery_s=10)
    ticket = breaker.try_acquire()
    assert ticket is not None
    ticket.failure()
    released = breaker.try_acquire()
    assert released is not None
    released.release()  # a 4xx: the caller's fault
    assert state_of(breaker) == "closed"
    assert breaker.consecutive_failures == 1
    fail(breaker, 1)
    clock.advance(10)
    trial = breaker.try_acquire()
    assert trial is not None
    trial.release()
    assert state_of(breaker) == "half_open"
    second = breaker.try_acquire()
    assert second is not None and second.trial
    second.success()
    assert seen[-1] == ("half_open", "closed")


async def test_cancellation_is_not_a_failure() -> None:
    breaker, clock, _ = make(threshold=1, recovery_s=10)
    started = asyncio.Event()

    async def slow_call() -> None:
        ticket = breaker.try_acquire()
        assert ticket is not None
        async with ticket:
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(slow_call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state_of(breaker) == "closed"  # threshold 1, yet still closed
    fail(breaker, 1)
    clock.advance(10)
    started.clear()
    task = asyncio.create_task(slow_call())  # takes the trial, then is cancelled
    await started.wait()
    assert breaker.try_acquire() is None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state_of(breaker) == "half_open"
    assert breaker.try_acquire() is not None  # the slot is free again


async def test_context_manager_reports_success_and_failure() -> None:
    breaker, _, _ = make(threshold=1)
    ticket = breaker.try_acquire()
    assert ticket is not None
    async with ticket:
        pass
    assert ticket.outcome == "success"
    ticket = breaker.try_acquire()
    assert ticket is not None
    with pytest.raises(RuntimeError, match="boom"):
        async with ticket:
            raise RuntimeError("boom")
    assert ticket.outcome == "failure"
    assert state_of(breaker) == "open"


def test_a_report_from_before_a_state_change_is_ignored() -> None:
    breaker, clock, _ = make(threshold=2, recovery_s=10)
    slow = breaker.try_acquire()  # issued while closed
    assert slow is not None
    fail(breaker, 2)
    assert state_of(breaker) == "open"
    slow.success()  # arrives late: must not close the circuit
    assert state_of(breaker) == "open"
    clock.advance(10)
    trial = breaker.try_acquire()
    assert trial is not None
    late = slow
    late.failure()  # already settled: no effect
    trial.success()
    assert state_of(breaker) == "closed"


def test_each_ticket_reports_once() -> None:
    breaker, _, _ = make(threshold=2)
    ticket = breaker.try_acquire()
    assert ticket is not None
    ticket.failure()
    ticket.failure()
    assert breaker.consecutive_failures == 1


def test_transitions_are_logged_and_exported(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_s=5,
        clock=clock,
        on_transition=metrics.on_breaker_transition,
    )
    caplog.set_level(logging.INFO, logger="backend_adapter.breaker")
    fail(breaker, 1)
    assert registry.get_sample_value("training_router_breaker_state") == 2
    clock.advance(5)
    trial = breaker.try_acquire()
    assert trial is not None
    assert registry.get_sample_value("training_router_breaker_state") == 1
    trial.success()
    assert registry.get_sample_value("training_router_breaker_state") == 0
    for state in ("open", "half_open", "closed"):
        value = registry.get_sample_value(
            "training_router_breaker_transitions_total", {"to": state}
        )
        assert value == 1
    changes = [r.getMessage() for r in caplog.records if "breaker.state_changed" in r.getMessage()]
    assert len(changes) == 3
    assert "from=closed to=open" in changes[0]
    assert "from=open to=half_open" in changes[1]
    assert "from=half_open to=closed" in changes[2]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
