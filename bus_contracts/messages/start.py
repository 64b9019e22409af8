"""``training.start``: a training request and its acceptance."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from bus_contracts import bounds
from bus_contracts.base import Reply, Request
from bus_contracts.messages.common import Executor, Symbol, TaskId, Timeframe
from bus_contracts.strategy import Strategy

MixedPrecision = Literal["auto", "bf16", "fp16", "off"]


class StartTraining(Request, frozen=True, kw_only=True, tag="training.start"):
    task_id: TaskId | None = None
    symbols: Annotated[list[Symbol], msgspec.Meta(min_length=1, max_length=bounds.MAX_SYMBOLS)]
    timeframe: Timeframe
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    strategy: Strategy = Strategy()
    device: Annotated[str, msgspec.Meta(pattern=bounds.DEVICE_PATTERN)] = "auto"
    mixed_precision: MixedPrecision = "auto"
    progress_interval_s: Annotated[float, msgspec.Meta(ge=0.05, le=60)] = 0.5


class TrainingAccepted(Reply, frozen=True, kw_only=True, tag="training.accepted"):
    task_id: str
    state: Literal["queued", "running", "completed", "failed", "cancelled", "lost"]
    executor: Executor
    host_id: str
    device: str
    progress_subject: str
    queue_position: int = 0
    created: bool = True
