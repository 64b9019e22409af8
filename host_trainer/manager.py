"""The job manager of a host trainer: a FIFO queue, a concurrency limit, and the
answers of the service's endpoints.

Every answer is quick (a registry read or write); training runs in worker
processes driven by :class:`job_runtime.JobRunner` tasks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec
from nats.js.client import JetStreamContext

from bus_contracts.errors import AtCapacity, Conflict, NotFound
from bus_contracts.messages.jobs import JobList, ListJobs
from bus_contracts.messages.performance import TrainingPerformance
from bus_contracts.messages.start import StartTraining, TrainingAccepted
from bus_contracts.messages.status import TrainingStatus
from bus_contracts.subjects import Subjects
from job_runtime import JobRecord, JobRegistry, JobRunner, RunnerSettings, newest_first
from job_runtime.preflight import require_data
from job_runtime.records import accepted_existing, request_digest, utcnow
from job_runtime.runner import WorkerFactory
from job_runtime.worker import WorkerHandle

log = logging.getLogger(__name__)


class ManagerConfig(Protocol):
    """The part of the host configuration the manager reads (some keys reload)."""

    @property
    def host_id(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def models_dir(self) -> Path: ...
    @property
    def max_concurrent_jobs(self) -> int: ...
    @property
    def max_queued_jobs(self) -> int: ...
    @property
    def progress_interval_s(self) -> float: ...
    @property
    def heartbeat_interval_s(self) -> float: ...
    @property
    def lost_after_s(self) -> float: ...
    @property
    def stop_grace_s(self) -> float: ...
    @property
    def max_job_duration_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class JobCounts:
    running: int
    queued: int


JobFinishedHook = Callable[[JobRecord, float, TrainingPerformance | None], None]
"""Called with the final record, the job's run time in seconds and, when it
completed, its performance report."""


class JobManager:
    def __init__(
        self,
        config: ManagerConfig,
        *,
        js: JetStreamContext,
        registry: JobRegistry,
        subjects: Subjects,
        worker_factory: WorkerFactory = WorkerHandle,
    ) -> None:
        self.config = config
        self._js = js
        self._registry = registry
        self._subjects = subjects
        self._worker_factory = worker_factory
        self._queue: deque[JobRunner] = deque()
        self._running: dict[str, tuple[JobRunner, asyncio.Task[None]]] = {}
        self._accepting = True
        self.on_job_finished: list[JobFinishedHook] = []
        self.max_running_seen = 0
        self._queue_heartbeat: asyncio.Task[None] | None = None

    # ---- the endpoints' answers -------------------------------------------------

    async def start(self, request: StartTraining) -> TrainingAccepted:
        if not self._accepting:
            raise AtCapacity("host trainer is shutting down; not taking jobs")
        task_id = request.task_id or uuid.uuid4().hex
        request = msgspec.structs.replace(request, task_id=task_id)
        full = len(self._running) >= self.config.max_concurrent_jobs
        if full and len(self._queue) >= self.config.max_queued_jobs:
            existing = await self._registry.get(task_id)
            if existing is None:
                raise AtCapacity(
                    f"queue full ({self.config.max_queued_jobs} jobs waiting); retry later"
                )
        require_data(request, self.config.data_dir)
        record = JobRecord(
            task_id=task_id,
            request=request,
            request_digest=request_digest(request),
            state="queued",
            executor="host",
            owner=self.config.host_id,
        )
        stored, created = await self._registry.claim(record)
        if not created:
            return accepted_existing(
                stored,
                record.request_digest,
                self._subjects,
                self.config.lost_after_s,
                self._position(stored.task_id),
            )
        runner = JobRunner(
            stored,
            settings=self._runner_settings(),
            subjects=self._subjects,
            registry=self._registry,
            js=self._js,
            worker_factory=self._worker_factory,
        )
        self._queue.append(runner)
        self._ensure_queue_heartbeat()
        position = len(self._queue)
        await runner.announce_queued(position)
        log.info("job.accepted task_id=%s queue_position=%d", task_id, position)
        self._schedule()
        started = task_id in self._running
        return TrainingAccepted(
            task_id=task_id,
            state="running" if started else "queued",
            executor="host",
            host_id=self.config.host_id,
            device=request.device,
            progress_subject=self._subjects.progress(task_id),
            queue_position=0 if started else self._position(task_id),
        )

    async def status(self, task_id: str) -> TrainingStatus:
        # This host's own jobs are answered from memory (their live state, no
        # registry round trip); any other job from the registry.
        runner = self._local_runner(task_id)
        record = runner.record if runner is not None else await self._record(task_id)
        return record.to_status(utcnow(), self.config.lost_after_s, self._position(task_id))

    def _local_runner(self, task_id: str) -> JobRunner | None:
        if task_id in self._running:
            return self._running[task_id][0]
        return next((runner for runner in self._queue if runner.task_id == task_id), None)

    async def stop(self, task_id: str, reason: str) -> TrainingStatus:
        record = await self._record(task_id)
        status = record.to_status(utcnow(), self.config.lost_after_s)
        if status.state in {"completed", "failed", "cancelled", "lost"}:
            raise Conflict(f"job {task_id} is already {status.state}; nothing to stop")
        queued = next((r for r in self._queue if r.task_id == task_id), None)
        if queued is not None:
            self._queue.remove(queued)
            await queued.cancel_queued(reason)
            return await self.status(task_id)
        if task_id in self._running:
            runner, _ = self._running[task_id]
            if runner.stopping:
                return status
            # Reply now; the worker ends within the grace period, then is terminated.
            asyncio.create_task(runner.stop(reason))  # noqa: RUF006 - tracked by the run task
            return status
        # Owned by another host or by a backend's fallback: its heartbeat picks this up.
        await self._registry.update(
            task_id, lambda current: msgspec.structs.replace(current, stop_requested=reason)
        )
        return status

    async def performance(self, task_id: str) -> TrainingPerformance:
        record = await self._record(task_id)
        if record.state != "completed":
            state = record.to_status(utcnow(), self.config.lost_after_s).state
            raise Conflict(f"job {task_id} is {state}; performance exists once it completed")
        performance = await self._registry.get_performance(task_id)
        if performance is None:
            raise NotFound(f"performance report of job {task_id} is missing from the store")
        return performance

    async def jobs(self, query: ListJobs) -> JobList:
        now = utcnow()
        statuses = [
            record.to_status(now, self.config.lost_after_s, self._position(record.task_id))
            for record in newest_first(await self._registry.all())
        ]
        matching = [
            status
            for status in statuses
            if (query.states is None or status.state in query.states)
            and (query.executor is None or status.executor == query.executor)
        ]
        return JobList(jobs=matching[: query.limit], total=len(matching))

    def counts(self) -> JobCounts:
        return JobCounts(running=len(self._running), queued=len(self._queue))

    @property
    def accepting(self) -> bool:
        return self._accepting

    # ---- scheduling -------------------------------------------------------------

    def _runner_settings(self) -> RunnerSettings:
        return RunnerSettings(
            data_dir=self.config.data_dir,
            models_dir=self.config.models_dir,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            stop_grace_s=self.config.stop_grace_s,
            min_progress_interval_s=self.config.progress_interval_s,
            max_duration_s=self.config.max_job_duration_s or None,
        )

    def _position(self, task_id: str) -> int:
        for index, runner in enumerate(self._queue, start=1):
            if runner.task_id == task_id:
                return index
        return 0

    def _schedule(self) -> None:
        while (
            self._accepting
            and self._queue
            and (len(self._running) < self.config.max_concurrent_jobs)
        ):
            runner = self._queue.popleft()
            task = asyncio.create_task(self._run(runner), name=f"job-{runner.task_id}")
            self._running[runner.task_id] = (runner, task)
            self.max_running_seen = max(self.max_running_seen, len(self._running))

    async def _run(self, runner: JobRunner) -> None:
        began = time.monotonic()
        try:
            record = await runner.run()
        except Exception:
            log.exception("job.runner_crashed task_id=%s", runner.task_id)
            record = runner.record
        finally:
            self._running.pop(runner.task_id, None)
            self._schedule()
        for hook in self.on_job_finished:
            hook(record, time.monotonic() - began, runner.performance)

    def _ensure_queue_heartbeat(self) -> None:
        if self._queue_heartbeat is None or self._queue_heartbeat.done():
            self._queue_heartbeat = asyncio.create_task(self._heartbeat_queued())

    async def _heartbeat_queued(self) -> None:
        """Waiting jobs are alive as long as this host is: say so, or they read as lost."""
        while self._queue:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            for runner in list(self._queue):
                await runner.heartbeat()

    def reload(self, config: ManagerConfig) -> None:
        """New limits apply to the next scheduling decision; running jobs are untouched."""
        self.config = config
        self._schedule()

    async def shutdown(self, reason: str, timeout_s: float) -> None:
        """Stop taking jobs, cancel queued ones, end running ones as failed with ``reason``."""
        self._accepting = False
        if self._queue_heartbeat is not None:
            self._queue_heartbeat.cancel()
        while self._queue:
            await self._queue.popleft().cancel_queued(reason)
        running = list(self._running.values())
        for runner, _ in running:
            asyncio.create_task(runner.abort(reason))  # noqa: RUF006 - awaited below via tasks
        tasks = [task for _, task in running]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                log.error("job.shutdown_timeout task=%s", task.get_name())
                task.cancel()

    async def _record(self, task_id: str) -> JobRecord:
        record = await self._registry.get(task_id)
        if record is None:
            raise NotFound(f"no job with task id {task_id}")
        return record
