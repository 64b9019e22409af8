"""``training.status.<id>`` and ``training.stop.<id>``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from bus_contracts import bounds
from bus_contracts.base import Reply, Request
from bus_contracts.messages.common import ErrorInfo, Executor, JobState, Phase, ResultSummary


class StatusRequest(Request, frozen=True, kw_only=True, tag="training.status_request"):
    """The (usually empty) body of a status request."""


class StopTraining(Request, frozen=True, kw_only=True, tag="training.stop"):
    reason: Annotated[str, msgspec.Meta(max_length=bounds.MAX_REASON_CHARS)] = "requested by user"


class TrainingStatus(Reply, frozen=True, kw_only=True, tag="training.status"):
    task_id: str
    state: JobState
    executor: Executor
    host_id: str
    device: str = ""
    phase: Phase | None = None
    percent: float = 0.0
    epoch: int = 0
    total_epochs: int = 0
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    queue_position: int = 0
    symbols: list[str] = msgspec.field(default_factory=list)
    timeframe: str = ""
    strategy: str = ""
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    heartbeat_at: dt.datetime | None = None
    error: ErrorInfo | None = None
    result: ResultSummary | None = None
