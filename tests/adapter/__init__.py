"""Tests of the backend adapter, and the helpers they share."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from backend_adapter import RouterSettings, TrainingRouter
from bus_contracts.messages.progress import FINAL_EVENT_TYPES, ProgressEvent
from bus_contracts.messages.start import StartTraining
from bus_contracts.strategy import EarlyStoppingSpec, Strategy, TrainingSpec
from bus_contracts.subjects import Subjects
from job_runtime import WorkerHandle
from job_runtime.worker_protocol import WorkerFailed, WorkerMessage, WorkerPhase, WorkerStarted

DATA_DIR = Path(__file__).resolve().parents[2] / "data"

RouterFactory = Callable[..., Awaitable[TrainingRouter]]
"""``await make_router(endpoint=..., workers=..., clock=..., **settings)``."""


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fallbacks(router: TrainingRouter, reason: str) -> float:
    value = router.metrics.registry.get_sample_value(
        "training_router_fallbacks_total", {"reason": reason}
    )
    return value or 0.0


def routed(router: TrainingRouter, route: str) -> float:
    value = router.metrics.registry.get_sample_value(
        "training_router_routes_total", {"route": route}
    )
    return value or 0.0


def decision_sum_s(router: TrainingRouter) -> float:
    """Total decision time of the router's starts so far."""
    return router.metrics.registry.get_sample_value("training_router_decision_seconds_sum") or 0.0


def tiny_request(
    task_id: str | None = None, *, device: str = "cpu", epochs: int = 2, seed: int = 7
) -> StartTraining:
    """A real training kept short: SPX daily bars since 2016, a couple of epochs."""
    return StartTraining(
        task_id=task_id,
        symbols=["SPX"],
        timeframe="1d",
        start_date=dt.date(2016, 1, 1),
        strategy=Strategy(
            training=TrainingSpec(
                epochs=epochs, seed=seed, early_stopping=EarlyStoppingSpec(enabled=False)
            )
        ),
        device=device,
    )


def router_settings(subjects: Subjects, tmp_path: Path, **overrides: Any) -> RouterSettings:
    values: dict[str, Any] = {
        "subject_root": subjects.root,
        "data_dir": DATA_DIR,
        "models_dir": tmp_path / "local-models",
        "heartbeat_interval_s": 0.2,
        "lost_after_s": 3.0,
        "reconnect_interval_s": 0.0,
    }
    values.update(overrides)
    return RouterSettings(**values)


class HangingWorker:
    """Stands in for a worker process: starts at once, then runs until asked to stop.

    For tests about routing and stopping, where a real training would only cost time.
    """

    def __init__(self, request: StartTraining, *, task_id: str, **_: Any) -> None:
        self.request = request
        self.task_id = task_id
        self._stop = asyncio.Event()
        self._alive = False

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self) -> None:
        self._alive = True

    async def messages(self) -> AsyncIterator[WorkerMessage]:
        yield WorkerStarted(pid=os.getpid(), device=self.request.device)
        yield WorkerPhase(phase="loading_data", percent=1.0)
        await self._stop.wait()
        self._alive = False
        yield WorkerFailed(code=409, message="stopped", cancelled=True)

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self, grace_s: float) -> None:
        self._stop.set()


class Workers:
    """A worker factory that remembers which task ids it ran."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.requests: list[StartTraining] = []

    def __call__(self, request: StartTraining, **kwargs: Any) -> WorkerHandle:
        self.started.append(kwargs["task_id"])
        self.requests.append(request)
        return cast(WorkerHandle, HangingWorker(request, **kwargs))


async def collect(
    events: AsyncIterator[ProgressEvent], timeout_s: float = 60.0
) -> list[ProgressEvent]:
    """Every event up to and including the final one."""

    async def run() -> list[ProgressEvent]:
        seen: list[ProgressEvent] = []
        async for event in events:
            seen.append(event)
            if isinstance(event, FINAL_EVENT_TYPES):
                break
        return seen

    return await asyncio.wait_for(run(), timeout_s)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until ``check()`` is true: polling, since the state lives in another process
    or on the bus."""

    async def poll() -> None:
        while not await check():  # noqa: ASYNC110 - nothing to wait on but the answer
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout_s)


def assert_gapless(events: list[ProgressEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], FINAL_EVENT_TYPES)
    percents = [e.percent for e in events]
    assert percents == sorted(percents)
