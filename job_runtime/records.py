"""The job record kept in the registry, one per task id.

It is the single source of truth that lets any host answer status for any job,
and that decides who runs a task id (the first to create the record).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec

from bus_contracts.errors import Conflict
from bus_contracts.messages.common import (
    FINAL_STATES,
    ErrorInfo,
    Executor,
    JobState,
    Phase,
    ResultSummary,
)
from bus_contracts.messages.start import StartTraining, TrainingAccepted
from bus_contracts.messages.status import TrainingStatus
from bus_contracts.subjects import Subjects


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def request_digest(request: StartTraining) -> str:
    """Identity of a request, to tell an idempotent retry from a conflicting reuse of an id.

    Taken on the request as the wire gives it back (a decode of its encoding), so
    that a request built in Python and the same one received as JSON agree: the
    default parameter ``14`` and a decoded ``14.0`` are one value.
    """
    canonical = _REQUEST_DECODER.decode(msgspec.json.encode(request))
    return hashlib.sha256(msgspec.json.encode(canonical)).hexdigest()


_REQUEST_DECODER = msgspec.json.Decoder(StartTraining)


class JobRecord(msgspec.Struct, kw_only=True):
    task_id: str
    request: StartTraining
    request_digest: str
    state: JobState
    executor: Executor
    owner: str
    """Host id of the host trainer, or ``local:<hostname>`` for the fallback."""
    device: str = ""
    phase: Phase | None = None
    percent: float = 0.0
    epoch: int = 0
    total_epochs: int = 0
    metrics: dict[str, float] = {}
    created_at: dt.datetime = msgspec.field(default_factory=utcnow)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    heartbeat_at: dt.datetime = msgspec.field(default_factory=utcnow)
    error: ErrorInfo | None = None
    result: ResultSummary | None = None
    last_seq: int = 0
    stop_requested: str | None = None
    """Set by whoever received a stop for a job another process owns."""

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def is_lost(self, now: dt.datetime, lost_after_s: float) -> bool:
        return not self.is_final and (now - self.heartbeat_at).total_seconds() > lost_after_s

    def to_status(
        self, now: dt.datetime, lost_after_s: float, queue_position: int = 0
    ) -> TrainingStatus:
        lost = self.is_lost(now, lost_after_s)
        error = self.error
        if lost and error is None:
            error = ErrorInfo(
                code=503,
                message=f"owner {self.owner} stopped heartbeating at {self.heartbeat_at:%H:%M:%S}Z",
            )
        return TrainingStatus(
            task_id=self.task_id,
            state="lost" if lost else self.state,
            executor=self.executor,
            host_id=self.owner,
            device=self.device,
            phase=self.phase,
            percent=self.percent,
            epoch=self.epoch,
            total_epochs=self.total_epochs,
            metrics=self.metrics,
            queue_position=queue_position if self.state == "queued" else 0,
            symbols=list(self.request.symbols),
            timeframe=self.request.timeframe,
            strategy=self.request.strategy.name,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            heartbeat_at=self.heartbeat_at,
            error=error,
            result=self.result,
        )


def accepted_existing(
    stored: JobRecord,
    digest: str,
    subjects: Subjects,
    lost_after_s: float,
    queue_position: int = 0,
) -> TrainingAccepted:
    """The answer to a start whose task id is already claimed: the existing job
    when the request is the same (an idempotent retry), else a conflict."""
    if stored.request_digest != digest:
        raise Conflict(
            f"task id {stored.task_id} already exists with a different request", field="task_id"
        )
    status = stored.to_status(utcnow(), lost_after_s)
    return TrainingAccepted(
        task_id=stored.task_id,
        state=status.state,
        executor=stored.executor,
        host_id=stored.owner,
        device=stored.device or stored.request.device,
        progress_subject=subjects.progress(stored.task_id),
        queue_position=queue_position,
        created=False,
    )
