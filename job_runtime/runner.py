"""Runs one job end to end, the same way on a host trainer and in the fallback.

worker process → engine messages → wire events (sequenced) → JetStream →
registry snapshots (at every state change and every heartbeat) → artifact and
performance report to the object store. Without NATS (the fallback with the bus
down) the same happens minus the bus: followers in this process read the
event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from nats.js.client import JetStreamContext

from bus_contracts.messages.common import ErrorInfo, Executor
from bus_contracts.messages.performance import TrainingPerformance
from bus_contracts.messages.progress import (
    BatchProgress,
    BatchSizeReduced,
    Cancelled,
    Completed,
    EpochEnded,
    Failed,
    PhaseChanged,
    ProgressEvent,
    Queued,
    Started,
)
from bus_contracts.subjects import Subjects
from job_runtime.publisher import EventPublisher
from job_runtime.records import JobRecord, utcnow
from job_runtime.registry import JobRegistry, artifact_name
from job_runtime.sequencer import EventLog, ProgressSequencer
from job_runtime.worker import WorkerHandle
from job_runtime.worker_protocol import (
    WorkerBatch,
    WorkerBatchSizeReduced,
    WorkerDone,
    WorkerEpoch,
    WorkerFailed,
    WorkerMessage,
    WorkerPhase,
    WorkerStarted,
)

log = logging.getLogger(__name__)

_FINAL_WRITE_ATTEMPTS = 60


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    data_dir: Path
    models_dir: Path
    heartbeat_interval_s: float = 1.0
    stop_grace_s: float = 1.0
    min_progress_interval_s: float = 0.0
    """The executor's floor under the request's progress_interval_s."""
    max_duration_s: float | None = None
    """A job still running after this long is ended as failed."""


WorkerFactory = Callable[..., WorkerHandle]


class JobRunner:
    def __init__(
        self,
        record: JobRecord,
        *,
        settings: RunnerSettings,
        subjects: Subjects,
        registry: JobRegistry | None = None,
        js: JetStreamContext | None = None,
        worker_factory: WorkerFactory = WorkerHandle,
    ) -> None:
        self.record = record
        self.task_id = record.task_id
        self.events = EventLog()
        self._settings = settings
        self._registry = registry
        self._sequencer = ProgressSequencer(record.task_id, record.last_seq, record.percent)
        self._publisher = EventPublisher(js, subjects, record.task_id) if js else None
        self._worker_factory = worker_factory
        self._worker: WorkerHandle | None = None
        self._stopping: str | None = None
        self._abort: str | None = None
        self._performance: TrainingPerformance | None = None
        self._overtime_task: asyncio.Task[None] | None = None

    @property
    def executor(self) -> Executor:
        return self.record.executor

    @property
    def performance(self) -> TrainingPerformance | None:
        return self._performance

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    async def _emit_after_save(
        self, event_type: type[Any], *, percent: float | None = None, **fields: Any
    ) -> ProgressEvent:
        """The final event: the registry shows the final state before anyone hears of it."""
        event: ProgressEvent = self._sequencer.next(event_type, percent=percent, **fields)
        self.record.last_seq = event.seq
        self.record.percent = event.percent
        if self._registry is not None:
            await self._with_retries(self._save_strict)
        await self.events.append(event)
        if self._publisher is not None:
            self._publisher.publish(event)
        return event

    async def _emit(
        self, event_type: type[Any], *, percent: float | None = None, **fields: Any
    ) -> ProgressEvent:
        event: ProgressEvent = self._sequencer.next(event_type, percent=percent, **fields)
        self.record.last_seq = event.seq
        self.record.percent = event.percent
        await self.events.append(event)
        if self._publisher is not None:
            self._publisher.publish(event)
        return event

    async def announce_queued(self, position: int) -> None:
        await self._emit(
            Queued, queue_position=position, executor=self.executor, host_id=self.record.owner
        )

    async def cancel_queued(self, reason: str) -> None:
        """End a job that never started."""
        await self._finish("cancelled", Cancelled, reason=reason)

    async def run(self) -> JobRecord:
        if self._abort is not None:  # stopped between scheduling and this first step
            await self._fail(ErrorInfo(code=503, message=self._abort))
            return self.record
        if self._stopping is not None:
            await self._finish("cancelled", Cancelled, reason=self._stopping)
            return self.record
        worker = self._worker_factory(
            self.record.request,
            task_id=self.task_id,
            data_dir=self._settings.data_dir,
            models_dir=self._settings.models_dir,
            progress_interval_s=max(
                self.record.request.progress_interval_s, self._settings.min_progress_interval_s
            ),
        )
        self._worker = worker
        worker.start()
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.task_id}")
        overtime = self._overtime_timer()
        try:
            async for message in worker.messages():
                await self._on_message(message)
        finally:
            if overtime is not None:
                overtime.cancel()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if worker.alive:
                await worker.stop(self._settings.stop_grace_s)
        if not self.record.is_final:  # the worker vanished without a word
            await self._fail(ErrorInfo(code=500, message="worker ended without a result"))
        return self.record

    def _overtime_timer(self) -> asyncio.TimerHandle | None:
        limit = self._settings.max_duration_s
        if limit is None:
            return None
        reason = f"ran longer than this executor's limit of {limit:g} s"

        def end() -> None:
            log.warning("job.overtime task_id=%s limit_s=%g", self.task_id, limit)
            self._overtime_task = asyncio.create_task(self.abort(reason))

        return asyncio.get_running_loop().call_later(limit, end)

    async def stop(self, reason: str) -> None:
        """The user's stop: the job ends as cancelled."""
        self._stopping = self._stopping or reason
        if self._worker is not None:
            await self._worker.stop(self._settings.stop_grace_s)

    async def abort(self, reason: str) -> None:
        """The host's stop (shutdown): the job ends as failed with ``reason``."""
        self._abort = self._abort or reason
        if self._worker is not None:
            await self._worker.stop(self._settings.stop_grace_s)

    async def close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close()

    async def _on_message(self, message: WorkerMessage) -> None:
        match message:
            case WorkerStarted(pid=pid, device=device):
                self.record.state = "running"
                self.record.device = device
                self.record.started_at = utcnow()
                self.record.total_epochs = self.record.request.strategy.training.epochs
                await self._emit(
                    Started,
                    executor=self.executor,
                    host_id=self.record.owner,
                    device=device,
                    pid=pid,
                )
                await self._save()
            case WorkerPhase(phase=phase, percent=percent, message=text):
                self.record.phase = phase
                await self._emit(PhaseChanged, percent=percent, phase=phase, message=text)
            case WorkerBatch() as batch:
                await self._emit(
                    BatchProgress,
                    percent=batch.percent,
                    epoch=batch.epoch,
                    epochs=batch.epochs,
                    batch=batch.batch,
                    batches=batch.batches,
                    loss=batch.loss,
                    samples_per_s=batch.samples_per_s,
                )
            case WorkerEpoch(metrics=metrics, epochs=epochs, best=best, percent=percent):
                self.record.epoch = metrics.epoch
                self.record.total_epochs = epochs
                self.record.metrics = {
                    "train_loss": metrics.train_loss,
                    "train_accuracy": metrics.train_accuracy,
                    "val_loss": metrics.val_loss,
                    "val_accuracy": metrics.val_accuracy,
                }
                await self._emit(
                    EpochEnded, percent=percent, epochs=epochs, metrics=metrics, best=best
                )
            case WorkerBatchSizeReduced() as reduced:
                await self._emit(
                    BatchSizeReduced,
                    percent=reduced.percent,
                    old_batch_size=reduced.old,
                    new_batch_size=reduced.new,
                    reason=reduced.reason,
                )
            case WorkerDone() as done:
                await self._complete(done)
            case WorkerFailed() as failed:
                await self._on_failure(failed)

    async def _complete(self, done: WorkerDone) -> None:
        package = Path(done.package_path)
        object_name: str | None = None
        if self._registry is not None:
            object_name = artifact_name(self.task_id)
            try:
                data = await asyncio.to_thread(package.read_bytes)
                await self._registry.put_artifact(object_name, data)
            except Exception:
                log.exception("artifact.upload_failed task_id=%s", self.task_id)
                object_name = None
        await asyncio.to_thread(package.unlink, missing_ok=True)
        summary = msgspec.structs.replace(done.summary, artifact_name=object_name)
        self._performance = TrainingPerformance(
            task_id=self.task_id,
            executor=self.executor,
            host_id=self.record.owner,
            training=done.training,
            test=done.test,
            model=done.model,
            resources=done.resources,
            artifact=msgspec.structs.replace(done.artifact, object_name=object_name),
            history=done.history,
        )
        if self._registry is not None:
            await self._with_retries(self._registry_put_performance)
        self.record.result = summary
        await self._finish("completed", Completed, percent=100.0, result=summary)

    async def _registry_put_performance(self) -> None:
        assert self._registry is not None and self._performance is not None
        await self._registry.put_performance(self._performance)

    async def _on_failure(self, failed: WorkerFailed) -> None:
        if self._abort is not None:
            await self._fail(ErrorInfo(code=503, message=self._abort))
        elif failed.cancelled or self._stopping is not None:
            await self._finish("cancelled", Cancelled, reason=self._stopping or failed.message)
        elif failed.code >= 500:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "job.failed task_id=%s error_id=%s message=%s%s",
                self.task_id,
                error_id,
                failed.message,
                f"\n{failed.traceback.rstrip()}" if failed.traceback else "",
            )
            await self._fail(ErrorInfo(code=failed.code, message=failed.message, error_id=error_id))
        else:
            await self._fail(
                ErrorInfo(code=failed.code, message=failed.message, field=failed.field)
            )

    async def _fail(self, error: ErrorInfo) -> None:
        self.record.error = error
        await self._finish("failed", Failed, error=error)

    async def _finish(
        self, state: str, event_type: type[Any], *, percent: float | None = None, **fields: Any
    ) -> None:
        self.record.state = state  # type: ignore[assignment]
        self.record.finished_at = utcnow()
        await self._emit_after_save(event_type, percent=percent, **fields)
        log.info("job.%s task_id=%s executor=%s", state, self.task_id, self.executor)
        await self.close()

    @property
    def stopping(self) -> bool:
        return self._stopping is not None or self._abort is not None

    async def heartbeat(self) -> None:
        """Tell the registry this job's owner is alive (used while it waits in a queue)."""
        await self._save()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval_s)
            await self._save()
            if self.record.stop_requested and self._stopping is None:
                log.info(
                    "job.stop_requested task_id=%s reason=%s",
                    self.task_id,
                    self.record.stop_requested,
                )
                asyncio.create_task(self.stop(self.record.stop_requested))  # noqa: RUF006

    async def _save(self) -> None:
        """Snapshot to the registry; a failure (bus down) waits for the next heartbeat."""
        try:
            await self._save_strict()
        except Exception as exc:  # noqa: BLE001
            log.warning("registry.snapshot_failed task_id=%s error=%s", self.task_id, exc)

    async def _save_strict(self) -> None:
        if self._registry is None:
            return
        self.record.heartbeat_at = utcnow()
        mine = self.record

        def merge(current: JobRecord) -> JobRecord:
            # stop_requested is written by others; everything else is ours.
            mine.stop_requested = current.stop_requested or mine.stop_requested
            return msgspec.structs.replace(mine)

        await self._registry.update(self.task_id, merge)

    async def _with_retries(self, action: Callable[[], Any]) -> None:
        for attempt in range(_FINAL_WRITE_ATTEMPTS):
            try:
                await action()
                return
            except Exception as exc:  # noqa: BLE001
                log.warning(
                    "registry.final_write_retry task_id=%s attempt=%d error=%s",
                    self.task_id,
                    attempt,
                    exc,
                )
                await asyncio.sleep(0.5)
        log.error("registry.final_write_abandoned task_id=%s", self.task_id)
