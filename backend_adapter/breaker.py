"""A circuit breaker in front of the host trainer, with exactly one half-open trial.

Written here rather than taken from a library: the common ones let every
concurrent caller through while half-open, and count a caller's cancellation as
a failure. Here:

- **closed**: every caller gets a ticket; ``failure_threshold`` consecutive
  failures open the circuit.
- **open**: every caller is refused (``try_acquire()`` returns None) until
  ``recovery_s`` have passed on the breaker's clock.
- **half_open**: the first caller after the recovery time gets the single
  *trial* ticket; everyone else is refused until the trial reports. Success
  closes the circuit, failure opens it again (and restarts the timer).

A ticket reports once: :meth:`Ticket.success`, :meth:`Ticket.failure`, or
:meth:`Ticket.release` (neither: a 4xx that is the caller's fault, or the
caller's own cancellation), which leaves the state as it is and frees the
half-open slot for the next caller. Reports from tickets issued before the
last state change are ignored, so a slow request from the closed era cannot
close a circuit that opened meanwhile.

The breaker never awaits, so on one event loop every method is atomic; a lock
makes it safe across threads as well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "half_open", "open"]
TransitionListener = Callable[[BreakerState, BreakerState], None]
"""Called with (from, to) on every state change, under the breaker's lock: keep it quick."""

TicketOutcome = Literal["success", "failure", "release"]


class Ticket:
    """Permission for one call to the protected service; report its outcome once.

    As an async context manager: leaving the block with ``CancelledError`` is a
    release, with any other exception a failure, normally a success, unless the
    ticket was already reported inside the block (that report stands).
    """

    __slots__ = ("_breaker", "_generation", "outcome", "trial")

    def __init__(self, breaker: CircuitBreaker, generation: int, *, trial: bool) -> None:
        self._breaker = breaker
        self._generation = generation
        self.trial = trial
        """True for the single half-open trial."""
        self.outcome: TicketOutcome | None = None

    @property
    def settled(self) -> bool:
        return self.outcome is not None

    def success(self) -> None:
        self._settle("success")

    def failure(self) -> None:
        self._settle("failure")

    def release(self) -> None:
        self._settle("release")

    def _settle(self, outcome: TicketOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self._breaker._report(self, outcome)

    async def __aenter__(self) -> Ticket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.success()
        elif issubclass(exc_type, Exception):
            self.failure()
        else:  # CancelledError, KeyboardInterrupt, SystemExit: not the service's fault
            self.release()


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        recovery_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "host",
        on_transition: TransitionListener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if recovery_s < 0:
            raise ValueError("recovery_s must be >= 0")
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self.name = name
        self._clock = clock
        self._listeners: list[TransitionListener] = [on_transition] if on_transition else []
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False
        self._generation = 0

    @property
    def state(self) -> BreakerState:
        """The state as last changed; an open circuit whose recovery time has passed
        still reads ``open`` until a caller takes the trial."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_after_s(self) -> float:
        """Seconds until an open circuit admits a trial (0 when not open)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.recovery_s - self._clock())

    def add_listener(self, listener: TransitionListener) -> None:
        self._listeners.append(listener)

    def try_acquire(self) -> Ticket | None:
        """A ticket to call the service, or None: the caller must not call it now."""
        with self._lock:
            if self._state == "closed":
                return Ticket(self, self._generation, trial=False)
            if self._state == "open":
                if self._clock() - self._opened_at < self.recovery_s:
                    return None
                self._move("half_open")
            if self._trial_out:
                return None
            self._trial_out = True
            return Ticket(self, self._generation, trial=True)

    def _report(self, ticket: Ticket, outcome: TicketOutcome) -> None:
        with self._lock:
            if ticket._generation != self._generation:
                log.debug(
                    "breaker.stale_report name=%s outcome=%s state=%s",
                    self.name,
                    outcome,
                    self._state,
                )
                return
            if ticket.trial:
                self._trial_out = False
                if outcome == "success":
                    self._move("closed")
                elif outcome == "failure":
                    self._open()
                return
            if outcome == "success":
                self._failures = 0
            elif outcome == "failure":
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move("open")

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._trial_out = False
        failures, self._failures = self._failures, 0
        log_level = logging.WARNING if new == "open" else logging.INFO
        log.log(
            log_level,
            "breaker.state_changed name=%s from=%s to=%s consecutive_failures=%d",
            self.name,
            old,
            new,
            failures,
        )
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                log.exception("breaker.listener_failed name=%s", self.name)
