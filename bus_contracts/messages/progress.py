"""``training.progress.<id>``: the event stream of one job.

Every event carries the job's ``seq`` (1, 2, 3… with no gap, whichever side runs
the job), a timestamp and the job's percent, which never goes backwards.
"""

from __future__ import annotations

import datetime as dt

from bus_contracts.base import Reply
from bus_contracts.messages.common import ErrorInfo, Executor, Phase, ResultSummary
from bus_contracts.messages.performance import EpochMetrics


class _Event(Reply, frozen=True, kw_only=True):
    task_id: str
    seq: int
    timestamp: dt.datetime
    percent: float


class Queued(_Event, frozen=True, kw_only=True, tag="training.queued"):
    queue_position: int
    executor: Executor
    host_id: str


class Started(_Event, frozen=True, kw_only=True, tag="training.started"):
    executor: Executor
    host_id: str
    device: str
    pid: int | None = None


class PhaseChanged(_Event, frozen=True, kw_only=True, tag="training.phase"):
    phase: Phase
    message: str = ""


class EpochEnded(_Event, frozen=True, kw_only=True, tag="training.epoch"):
    epochs: int
    metrics: EpochMetrics
    best: bool
    """True when this epoch has the best validation loss so far."""


class BatchProgress(_Event, frozen=True, kw_only=True, tag="training.batch"):
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    samples_per_s: float


class BatchSizeReduced(_Event, frozen=True, kw_only=True, tag="training.batch_size_reduced"):
    old_batch_size: int
    new_batch_size: int
    reason: str


class Completed(_Event, frozen=True, kw_only=True, tag="training.completed"):
    result: ResultSummary


class Failed(_Event, frozen=True, kw_only=True, tag="training.failed"):
    error: ErrorInfo


class Cancelled(_Event, frozen=True, kw_only=True, tag="training.cancelled"):
    reason: str


ProgressEvent = (
    Queued
    | Started
    | PhaseChanged
    | EpochEnded
    | BatchProgress
    | BatchSizeReduced
    | Completed
    | Failed
    | Cancelled
)
FinalEvent = Completed | Failed | Cancelled
FINAL_EVENT_TYPES = (Completed, Failed, Cancelled)
