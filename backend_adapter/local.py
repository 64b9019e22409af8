"""The in-container fallback: runs training jobs in this process' container, on the CPU.

It uses the same :class:`job_runtime.JobRunner` as a host trainer (one worker
process per job, sequenced events, the same records, results and model
layout), so a job looks the same whichever side ran it; only ``executor`` says
``local`` and ``host_id`` says ``local:<hostname>``.

With the bus (a :class:`LocalBus`), a job is first claimed in the job registry
(create-if-absent): if a host trainer already holds the task id with the same
request (it accepted a start that timed out here), the fallback does not run it
and answers the host's acceptance instead, so the caller follows the job where
it runs; a different request under that id is a :class:`Conflict`. Progress goes
to the same subject a host would use, the record is heartbeated, and a
``stop_requested`` written into the registry by anyone ends the job.

Without the bus, jobs run purely in this process: status, progress, stop and
performance are answered from memory.

Local jobs always train on the CPU: a request for ``cuda`` or ``mps`` written
for a GPU host must not fail in a container without one. The acceptance says
``device: cpu``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from nats.js.client import JetStreamContext

from backend_adapter.settings import RouterSettings
from bus_contracts.errors import Conflict, NotFound
from bus_contracts.messages.performance import TrainingPerformance
from bus_contracts.messages.start import StartTraining, TrainingAccepted
from bus_contracts.messages.status import TrainingStatus
from job_runtime import EventLog, JobRecord, JobRegistry, JobRunner, RunnerSettings, WorkerHandle
from job_runtime.records import accepted_existing, request_digest, utcnow
from job_runtime.runner import WorkerFactory

log = logging.getLogger(__name__)

LOCAL_DEVICE = "cpu"
_KEEP_FINISHED = 256
_SHUTDOWN_REASON = "backend shutting down"


@dataclass(frozen=True, slots=True)
class LocalBus:
    """What a local job needs of NATS: JetStream for progress, the registry to claim."""

    js: JetStreamContext
    registry: JobRegistry


@dataclass(eq=False)
class _LocalJob:
    runner: JobRunner
    bus: LocalBus | None
    stop_reason: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def record(self) -> JobRecord:
        return self.runner.record


def local_owner() -> str:
    return f"local:{socket.gethostname()}"


def _on_cpu(factory: WorkerFactory) -> WorkerFactory:
    def make(request: StartTraining, **kwargs: Any) -> WorkerHandle:
        return factory(msgspec.structs.replace(request, device=LOCAL_DEVICE), **kwargs)

    return make


class LocalExecutor:
    """A FIFO of local jobs, at most ``settings.local_max_concurrent_jobs`` at a time."""

    def __init__(
        self,
        settings: RouterSettings,
        *,
        worker_factory: WorkerFactory = WorkerHandle,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.subjects = settings.subjects
        self.owner = owner or local_owner()
        self._worker_factory = _on_cpu(worker_factory)
        self._jobs: OrderedDict[str, _LocalJob] = OrderedDict()
        self._queue: deque[_LocalJob] = deque()
        self._running: dict[str, _LocalJob] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    # ---- starting ------------------------------------------------------------------

    async def start(self, request: StartTraining, bus: LocalBus | None = None) -> TrainingAccepted:
        """Queue ``request`` (its ``task_id`` set) here, or answer the job that already
        holds its task id. Raises :class:`Conflict` for a task id taken by another request."""
        if self._closing:
            raise RuntimeError("the local executor is closed")
        task_id = request.task_id
        if task_id is None:
            raise ValueError("the request needs a task_id")
        record = JobRecord(
            task_id=task_id,
            request=request,
            request_digest=request_digest(request),
            state="queued",
            executor="local",
            owner=self.owner,
            device=LOCAL_DEVICE,
        )
        known = self._jobs.get(task_id)
        if known is not None:
            return accepted_existing(
                self._live_record(known), record.request_digest, self.subjects, self._lost_after_s
            )
        if bus is not None:
            stored, created = await bus.registry.claim(record)
            if not created:
                log.info(
                    "local.claim_found_existing task_id=%s executor=%s owner=%s",
                    task_id,
                    stored.executor,
                    stored.owner,
                )
                return accepted_existing(
                    stored, record.request_digest, self.subjects, self._lost_after_s
                )
        if request.device != LOCAL_DEVICE:
            log.info(
                "local.device_override task_id=%s requested=%s used=%s",
                task_id,
                request.device,
                LOCAL_DEVICE,
            )
        runner = JobRunner(
            record,
            settings=RunnerSettings(
                data_dir=self.settings.data_dir,
                models_dir=self.settings.models_dir,
                heartbeat_interval_s=self.settings.heartbeat_interval_s,
            ),
            subjects=self.subjects,
            registry=bus.registry if bus else None,
            js=bus.js if bus else None,
            worker_factory=self._worker_factory,
        )
        job = _LocalJob(runner=runner, bus=bus)
        self._jobs[task_id] = job
        self._queue.append(job)
        position = len(self._queue)
        await runner.announce_queued(position)
        self._schedule()
        started = task_id in self._running
        log.info(
            "local.accepted task_id=%s state=%s queue_position=%d with_bus=%s",
            task_id,
            "running" if started else "queued",
            0 if started else self._position(task_id),
            bus is not None,
        )
        return TrainingAccepted(
            task_id=task_id,
            state="running" if started else "queued",
            executor="local",
            host_id=self.owner,
            device=LOCAL_DEVICE,
            progress_subject=self.subjects.progress(task_id),
            queue_position=0 if started else self._position(task_id),
        )

    # ---- answers for jobs of this process -----------------------------------------

    def has(self, task_id: str) -> bool:
        """True for a job this executor runs or ran (and still remembers)."""
        return task_id in self._jobs

    def uses_bus(self, task_id: str) -> bool:
        return self._job(task_id).bus is not None

    def status(self, task_id: str) -> TrainingStatus:
        job = self._job(task_id)
        return self._live_record(job).to_status(
            utcnow(), self._lost_after_s, self._position(task_id)
        )

    def statuses(self) -> list[TrainingStatus]:
        """Every remembered job, newest first."""
        return [self.status(task_id) for task_id in reversed(self._jobs)]

    async def stop(self, task_id: str, reason: str) -> TrainingStatus:
        job = self._job(task_id)
        status = self.status(task_id)
        if job.record.is_final:
            raise Conflict(f"job {task_id} is already {status.state}; nothing to stop")
        if job in self._queue:
            self._queue.remove(job)
            await job.runner.cancel_queued(reason)
            self._retire(job)
            return self.status(task_id)
        job.stop_reason = job.stop_reason or reason
        log.info("local.stop task_id=%s reason=%s", task_id, reason)
        self._spawn(job.runner.stop(reason), f"stop-{task_id}")
        return status

    def performance(self, task_id: str) -> TrainingPerformance:
        job = self._job(task_id)
        performance = job.runner.performance
        if performance is None or job.record.state != "completed":
            state = self.status(task_id).state
            raise Conflict(f"job {task_id} is {state}; performance exists once it completed")
        return performance

    def events(self, task_id: str) -> EventLog:
        return self._job(task_id).runner.events

    def model_dir(self, task_id: str) -> Path | None:
        """Where the finished model of a remembered job lies on this filesystem."""
        performance = self._job(task_id).runner.performance
        return Path(performance.artifact.model_path) if performance is not None else None

    @property
    def active_jobs(self) -> int:
        return len(self._running) + len(self._queue)

    # ---- scheduling --------------------------------------------------------------

    def _schedule(self) -> None:
        limit = self.settings.local_max_concurrent_jobs
        while not self._closing and self._queue and len(self._running) < limit:
            job = self._queue.popleft()
            self._running[job.runner.task_id] = job
            job.task = self._spawn(self._run(job), f"local-job-{job.runner.task_id}")

    async def _run(self, job: _LocalJob) -> None:
        runner = job.runner
        try:
            if job.stop_reason is not None:  # stopped between scheduling and now
                await runner.cancel_queued(job.stop_reason)
            else:
                await runner.run()
        except Exception:
            log.exception("local.runner_crashed task_id=%s", runner.task_id)
        finally:
            self._running.pop(runner.task_id, None)
            self._retire(job)
            self._schedule()

    def _retire(self, job: _LocalJob) -> None:
        """Forget the oldest finished jobs beyond a bound (the registry keeps them)."""
        finished = [t for t, j in self._jobs.items() if j.record.is_final]
        for task_id in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self._jobs[task_id]

    def _spawn(self, work: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _position(self, task_id: str) -> int:
        for index, job in enumerate(self._queue, start=1):
            if job.runner.task_id == task_id:
                return index
        return 0

    def _job(self, task_id: str) -> _LocalJob:
        job = self._jobs.get(task_id)
        if job is None:
            raise NotFound(f"no local job with task id {task_id}")
        return job

    def _live_record(self, job: _LocalJob) -> JobRecord:
        """The record, with this process' own heartbeat when the job lives here: an
        in-process job is never ``lost`` while this process answers for it."""
        if job.record.is_final:
            return job.record
        return msgspec.structs.replace(job.record, heartbeat_at=utcnow())

    @property
    def _lost_after_s(self) -> float:
        return self.settings.lost_after_s

    # ---- shutting down -------------------------------------------------------------

    async def aclose(self, reason: str = _SHUTDOWN_REASON, timeout_s: float = 15.0) -> None:
        """Cancel queued jobs, end running ones as failed with ``reason``, and wait."""
        self._closing = True
        while self._queue:
            job = self._queue.popleft()
            with contextlib.suppress(Exception):
                await job.runner.cancel_queued(reason)
        running = list(self._running.values())
        for job in running:
            self._spawn(job.runner.abort(reason), f"abort-{job.runner.task_id}")
        tasks = [job.task for job in running if job.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                log.error("local.shutdown_timeout task=%s", task.get_name())
                task.cancel()
        leftovers = [task for task in self._tasks if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)
