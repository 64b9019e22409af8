"""The backend's single entry point to training: host trainer when it can, this
container's CPU when it must.

::

    async with TrainingRouter() as router:
        accepted = await router.start(StartTraining(symbols=["SPX"], timeframe="1d"))
        async for event in router.progress(accepted.task_id):
            ...
        performance = await router.performance(accepted.task_id)
        model_dir = await router.fetch_model(accepted.task_id, "models/")

Routing of :meth:`TrainingRouter.start` (every decision logged with the task id
and counted in :class:`~backend_adapter.metrics.RouterMetrics`):

1. the request is validated here first (a bad one raises ``BadRequest`` and goes
   nowhere) and always gets a task id;
2. host disabled (``USE_TRAINING_HOST_SERVICE=false``) → local, ``disabled``;
3. NATS not connected → local at once, ``bus_unreachable``;
4. circuit breaker refuses → local at once, ``breaker_open``;
5. ``training.start`` with ``start_timeout_s``: no responders (no host trainer
   subscribed) → local in about a millisecond, not a breaker failure; timeout (a
   hung or overloaded host) → breaker failure, local; a 4xx answer → raised as a
   :class:`~bus_contracts.errors.ServiceError` (the caller's fault: no fallback,
   breaker unchanged); a 5xx → breaker failure, local; success → returned.

A local start with NATS up claims the task id in the registry first, so a host
that accepted a timed-out start late still runs the job alone: the answer then
says ``executor: host``. The caller's cancellation is never a breaker failure.

Status, stop, performance and jobs: jobs this process runs are answered from
memory; others by the host trainer, or, when none answers, straight from the
registry (the backend user may read it), so they work with no host trainer up.
A stop with no host writes ``stop_requested`` into the registry; the job's owner
sees it at its next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext
from prometheus_client import CollectorRegistry

from backend_adapter.breaker import CircuitBreaker
from backend_adapter.following import follow_progress
from backend_adapter.local import LocalBus, LocalExecutor
from backend_adapter.metrics import FallbackReason, RouterMetrics
from backend_adapter.models import fetch_model
from backend_adapter.settings import RouterSettings
from bus_contracts import bounds
from bus_contracts.base import Reply, Request
from bus_contracts.codec import decode_reply, decode_request, encode
from bus_contracts.errors import (
    BadRequest,
    Conflict,
    ContractError,
    NotFound,
    ReplyDecodeError,
    ServiceError,
)
from bus_contracts.messages.common import FINAL_STATES
from bus_contracts.messages.errors import ErrorReply
from bus_contracts.messages.health import HealthReport, HealthRequest
from bus_contracts.messages.jobs import JobList, ListJobs
from bus_contracts.messages.performance import PerformanceRequest, TrainingPerformance
from bus_contracts.messages.progress import ProgressEvent
from bus_contracts.messages.start import StartTraining, TrainingAccepted
from bus_contracts.messages.status import StatusRequest, StopTraining, TrainingStatus
from bus_contracts.subjects import check_task_id
from embedded_nats import BusAuthRefused, BusEndpoint, BusUnreachable, connect
from job_runtime import JobRecord, JobRegistry, WorkerHandle, newest_first
from job_runtime.records import utcnow
from job_runtime.runner import WorkerFactory

log = logging.getLogger(__name__)

_R = TypeVar("_R", bound=Reply)
_CLIENT_NAME = "training-router"
_ERROR_REPEAT_S = 60.0
# Failures of the bus itself (not of a host trainer): connection gone, JetStream
# API errors, timeouts. nats.errors.TimeoutError is an OSError too.
_BUS_ERRORS = (nats.errors.Error, OSError)


class HostUnavailable(ServiceError):
    """503: no host trainer answered, and (for job queries) the registry could not
    be read either, e.g. NATS is down and the job is not in this process."""

    default_code = 503


class TrainingRouter:
    """Routes training jobs to a host trainer or runs them here; see the module doc.

    ``metrics_registry``: where the router's Prometheus metrics go (a fresh
    registry when None). ``clock``: the breaker's clock (``time.monotonic``).
    ``endpoint``: where and as whom to connect, instead of
    :meth:`RouterSettings.endpoint`. ``worker_factory``: the local executor's
    worker (tests only).
    """

    def __init__(
        self,
        settings: RouterSettings | None = None,
        *,
        metrics_registry: CollectorRegistry | None = None,
        clock: Callable[[], float] | None = None,
        endpoint: BusEndpoint | None = None,
        worker_factory: WorkerFactory = WorkerHandle,
    ) -> None:
        self.settings = settings if settings is not None else RouterSettings.from_env()
        self.subjects = self.settings.subjects
        self.metrics = RouterMetrics(metrics_registry)
        self.breaker = CircuitBreaker(
            failure_threshold=self.settings.breaker_failure_threshold,
            recovery_s=self.settings.breaker_recovery_s,
            clock=clock or time.monotonic,
            name="host",
            on_transition=self.metrics.on_breaker_transition,
        )
        self.local = LocalExecutor(self.settings, worker_factory=worker_factory)
        self._endpoint = endpoint
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._registry: JobRegistry | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._warned_unreachable = False
        self._last_error = ("", 0.0)

    # ---- life cycle ------------------------------------------------------------------

    async def __aenter__(self) -> TrainingRouter:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect to NATS within ``connect_timeout_s``; when it is unreachable, work
        locally and retry in the background every ``reconnect_interval_s``."""
        if await self._connect():
            return
        if self.settings.reconnect_interval_s > 0:
            self._reconnector = asyncio.create_task(self._reconnect(), name="router-reconnect")

    async def aclose(self) -> None:
        """End local jobs (as failed: the backend is going away), then disconnect."""
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
        await self.local.aclose()
        nc, self._nc, self._js, self._registry = self._nc, None, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    @property
    def registry(self) -> JobRegistry | None:
        """The job registry while NATS is connected."""
        return self._registry if self.connected else None

    @property
    def connected(self) -> bool:
        """True while NATS is connected (a reconnecting client is not)."""
        return self._nc is not None and self._nc.is_connected

    async def _connect(self) -> bool:
        endpoint = self._endpoint or self.settings.endpoint()
        try:
            nc = await connect(
                endpoint,
                name=_CLIENT_NAME,
                connect_timeout_s=self.settings.connect_timeout_s,
                fail_fast=True,
                error_cb=self._on_nats_error,
            )
        except BusUnreachable as exc:  # BusAuthRefused included
            if not self._warned_unreachable:
                self._warned_unreachable = True
                level = logging.ERROR if isinstance(exc, BusAuthRefused) else logging.WARNING
                log.log(
                    level,
                    "router.bus_unreachable url=%s error=%s: training runs locally",
                    endpoint.url,
                    exc,
                )
            return False
        js = nc.jetstream(timeout=self.settings.request_timeout_s)
        try:
            registry = await JobRegistry.open(js, self.subjects)
        except _BUS_ERRORS as exc:
            log.warning(
                "router.registry_unavailable url=%s error=%s: local jobs will not be claimed",
                endpoint.url,
                exc,
            )
            self._nc, self._js = nc, js
            return True
        self._nc, self._js, self._registry = nc, js, registry
        log.info("router.bus_connected url=%s root=%s", endpoint.url, self.subjects.root)
        return True

    async def _on_nats_error(self, exc: Exception) -> None:
        # While NATS is unreachable, a failed attempt is the expected outcome (logged
        # once, by _connect); once connected, errors (permissions, a lost link) matter.
        # The same error over and over (a reconnect loop) is logged once a minute.
        text, now = str(exc), time.monotonic()
        repeated = text == self._last_error[0] and now - self._last_error[1] < _ERROR_REPEAT_S
        if self._nc is None or repeated:
            log.debug("router.nats_error error=%s", text)
            return
        self._last_error = (text, now)
        log.warning("router.nats_error error=%s", text)

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconnect_interval_s)
            if await self._connect():
                return

    def _local_bus(self) -> LocalBus | None:
        if self.connected and self._js is not None and self._registry is not None:
            return LocalBus(js=self._js, registry=self._registry)
        return None

    # ---- start -------------------------------------------------------------------------

    async def start(self, request: StartTraining) -> TrainingAccepted:
        """Start a training job on a host trainer, or here; see the module doc.

        Raises ``BadRequest`` for an invalid request, ``Conflict`` for a task id
        already used by another request (an identical request returns the existing
        job: retries are safe), another ``ServiceError`` for a host's 4xx answer.
        """
        began = time.perf_counter()
        request = _prepared(request)
        task_id = request.task_id
        assert task_id is not None
        if not self.settings.use_host:
            return await self._fallback(request, "disabled", began, delivered=False)
        if not self.connected:
            return await self._fallback(request, "bus_unreachable", began, delivered=False)
        ticket = self.breaker.try_acquire()
        if ticket is None:
            return await self._fallback(request, "breaker_open", began, delivered=False)
        trial = " trial=true" if ticket.trial else ""
        assert self._nc is not None
        try:
            msg = await self._nc.request(
                self.subjects.start, encode(request), timeout=self.settings.start_timeout_s
            )
            reply = decode_reply(msg.data, TrainingAccepted)
        except nats.errors.NoRespondersError:  # before TimeoutError: see PITFALLS
            ticket.release()
            return await self._fallback(request, "no_responders", began, delivered=False)
        except nats.errors.TimeoutError:
            ticket.failure()
            return await self._fallback(request, "timeout", began, delivered=True)
        except ReplyDecodeError as exc:
            ticket.failure()
            log.warning("router.bad_host_reply task_id=%s error=%s", task_id, exc)
            return await self._fallback(request, "server_error", began, delivered=True)
        except _BUS_ERRORS as exc:
            ticket.release()
            log.warning("router.bus_error task_id=%s error=%r", task_id, exc)
            return await self._fallback(request, "bus_unreachable", began, delivered=True)
        except BaseException:  # the caller's cancellation: not the host's failure
            ticket.release()
            raise
        if isinstance(reply, ErrorReply):
            if 400 <= reply.code < 500:
                ticket.release()
                log.info(
                    "router.host_refused task_id=%s code=%d message=%s%s",
                    task_id,
                    reply.code,
                    reply.message,
                    trial,
                )
                raise ServiceError.from_reply(reply)
            ticket.failure()
            log.warning(
                "router.host_error task_id=%s code=%d error_id=%s message=%s",
                task_id,
                reply.code,
                reply.error_id,
                reply.message,
            )
            return await self._fallback(request, "server_error", began, delivered=True)
        ticket.success()
        decision_s = time.perf_counter() - began
        self.metrics.record_route("host", decision_s)
        log.info(
            "router.route task_id=%s route=host host_id=%s state=%s decision_ms=%.2f%s",
            task_id,
            reply.host_id,
            reply.state,
            decision_s * 1000,
            trial,
        )
        return reply

    async def _fallback(
        self, request: StartTraining, reason: FallbackReason, began: float, *, delivered: bool
    ) -> TrainingAccepted:
        """Run ``request`` here. ``delivered``: a host trainer may have received it."""
        decision_s = time.perf_counter() - began
        self.metrics.record_fallback(reason)
        self.metrics.record_route("local", decision_s)
        log.info(
            "router.route task_id=%s route=local reason=%s decision_ms=%.2f breaker=%s",
            request.task_id,
            reason,
            decision_s * 1000,
            self.breaker.state,
        )
        bus = self._local_bus()
        try:
            accepted = await self.local.start(request, bus)
        except _BUS_ERRORS as exc:
            if bus is None:
                raise
            if delivered:
                # A host may hold the task id already: running it unclaimed could
                # run it twice. The caller may retry with the same task id.
                raise HostUnavailable(
                    f"could not claim task id {request.task_id} in the job registry: {exc}"
                ) from exc
            log.warning(
                "router.claim_failed task_id=%s error=%r: running in this process only",
                request.task_id,
                exc,
            )
            accepted = await self.local.start(request, None)
        if accepted.executor != "local" or not accepted.created:
            log.info(
                "router.existing_job task_id=%s executor=%s host_id=%s state=%s",
                accepted.task_id,
                accepted.executor,
                accepted.host_id,
                accepted.state,
            )
        return accepted

    # ---- questions about jobs -----------------------------------------------------

    async def status(self, task_id: str) -> TrainingStatus:
        """The job's state, wherever it runs or ran. Raises ``NotFound``."""
        _check_id(task_id)
        if self.local.has(task_id):
            return self.local.status(task_id)
        reply = await self._ask_host(self.subjects.status(task_id), StatusRequest(), TrainingStatus)
        if reply is not None:
            return reply
        record = await self._record(task_id)
        return record.to_status(utcnow(), self.settings.lost_after_s)

    async def stop(self, task_id: str, reason: str = "requested by user") -> TrainingStatus:
        """Ask the job to stop; it ends as ``cancelled``. Raises ``NotFound``, or
        ``Conflict`` for a job already finished. Returns the status as of the request."""
        _check_id(task_id)
        if self.local.has(task_id):
            return await self.local.stop(task_id, reason)
        body = StopTraining(reason=reason[: bounds.MAX_REASON_CHARS])
        reply = await self._ask_host(self.subjects.stop(task_id), body, TrainingStatus)
        if reply is not None:
            return reply
        record = await self._record(task_id)
        status = record.to_status(utcnow(), self.settings.lost_after_s)
        if status.state in FINAL_STATES:
            raise Conflict(f"job {task_id} is already {status.state}; nothing to stop")
        assert self._registry is not None
        try:
            await self._registry.update(
                task_id, lambda current: msgspec.structs.replace(current, stop_requested=reason)
            )
        except _BUS_ERRORS as exc:
            raise HostUnavailable(f"could not write the stop of job {task_id}: {exc}") from exc
        log.info("router.stop_requested task_id=%s owner=%s via=registry", task_id, record.owner)
        return status

    async def performance(self, task_id: str) -> TrainingPerformance:
        """The full result of a completed job. Raises ``NotFound``, or ``Conflict``
        while the job has not completed."""
        _check_id(task_id)
        if self.local.has(task_id):
            return self.local.performance(task_id)
        subject = self.subjects.performance(task_id)
        reply = await self._ask_host(subject, PerformanceRequest(), TrainingPerformance)
        if reply is not None:
            return reply
        record = await self._record(task_id)
        if record.state != "completed":
            state = record.to_status(utcnow(), self.settings.lost_after_s).state
            raise Conflict(f"job {task_id} is {state}; performance exists once it completed")
        assert self._registry is not None
        try:
            performance = await self._registry.get_performance(task_id)
        except _BUS_ERRORS as exc:
            raise HostUnavailable(f"could not read the performance of {task_id}: {exc}") from exc
        if performance is None:
            raise NotFound(f"performance report of job {task_id} is missing from the store")
        return performance

    async def jobs(self, query: ListJobs | None = None) -> JobList:
        """Jobs newest first: the host's (or the registry's) list, plus jobs that ran
        in this process without the bus."""
        query = query if query is not None else ListJobs()
        listed: list[TrainingStatus] = []
        total = 0
        reply = await self._ask_host(self.subjects.jobs, query, JobList)
        if reply is not None:
            listed, total = reply.jobs, reply.total
        elif self.connected and self._registry is not None:
            try:
                records = await self._registry.all()
            except _BUS_ERRORS as exc:
                log.warning("router.registry_list_failed error=%s", exc)
            else:
                now = utcnow()
                statuses = [
                    r.to_status(now, self.settings.lost_after_s) for r in newest_first(records)
                ]
                matching = [s for s in statuses if _matches(s, query)]
                listed, total = matching[: query.limit], len(matching)
        # This process' own jobs: fresher than the registry, and the only record of
        # jobs that ran with the bus down.
        listed_ids = {s.task_id for s in listed}
        own = {s.task_id: s for s in self.local.statuses() if _matches(s, query)}
        extra = [
            s
            for task_id, s in own.items()
            if task_id not in listed_ids and not self.local.uses_bus(task_id)
        ]
        merged = [own.get(s.task_id, s) for s in listed] + extra
        merged.sort(key=lambda s: s.created_at or utcnow(), reverse=True)
        return JobList(jobs=merged[: query.limit], total=total + len(extra))

    async def health(self, detailed: bool = False) -> HealthReport:
        """The host trainer's health. Raises :class:`HostUnavailable` when none answers."""
        if not self.connected or self._nc is None:
            raise HostUnavailable("NATS is not reachable, so no host trainer can answer")
        try:
            msg = await self._nc.request(
                self.subjects.health,
                encode(HealthRequest(detailed=detailed)),
                timeout=self.settings.request_timeout_s,
            )
        except nats.errors.NoRespondersError as exc:
            raise HostUnavailable("no host trainer is running (no responders)") from exc
        except nats.errors.TimeoutError as exc:
            raise HostUnavailable(
                f"no host trainer answered within {self.settings.request_timeout_s:g} s"
            ) from exc
        except _BUS_ERRORS as exc:
            raise HostUnavailable(f"health request failed: {exc!r}") from exc
        reply = decode_reply(msg.data, HealthReport)
        if isinstance(reply, ErrorReply):
            raise ServiceError.from_reply(reply)
        return reply

    async def progress(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[ProgressEvent]:
        """The job's events, history first, then live, until the final one; each
        ``seq`` once. Raises ``NotFound`` (at the first step) for an unknown job.
        Ends early, without a final event, if the job's owner is lost."""
        _check_id(task_id)
        source: AsyncGenerator[ProgressEvent, None]
        if self.local.has(task_id):
            source = follow_progress(
                task_id, events=self.local.events(task_id), after_seq=after_seq
            )
        else:
            await self.status(task_id)  # NotFound now rather than waiting for ever
            if not self.connected or self._js is None:
                raise HostUnavailable(f"NATS is not reachable: cannot follow job {task_id}")

            async def ended() -> bool:
                try:
                    return (await self.status(task_id)).state in FINAL_STATES
                except ServiceError:
                    return False

            source = follow_progress(
                task_id, js=self._js, subjects=self.subjects, after_seq=after_seq, on_idle=ended
            )
        async with contextlib.aclosing(source):
            async for event in source:
                yield event

    async def fetch_model(self, task_id: str, dest_dir: Path | str) -> Path:
        """Download (or copy) the job's model into ``dest_dir``; returns the model's
        directory there, verified. Raises ``Conflict`` before the job completed."""
        status = await self.status(task_id)
        if status.state != "completed" or status.result is None:
            raise Conflict(f"job {task_id} is {status.state}; its model exists once it completed")
        model_dir = Path(status.result.model_path)
        if self.local.has(task_id):
            model_dir = self.local.model_dir(task_id) or model_dir
        registry = self._registry if self.connected else None
        try:
            return await fetch_model(
                task_id,
                dest_dir,
                registry=registry,
                artifact_name=status.result.artifact_name,
                model_dir=model_dir,
            )
        except _BUS_ERRORS as exc:
            raise HostUnavailable(f"could not download the model of {task_id}: {exc}") from exc

    # ---- helpers -----------------------------------------------------------------------

    async def _ask_host(self, subject: str, body: Request, reply_type: type[_R]) -> _R | None:
        """The host's answer, or None when no host should or could answer (then the
        caller reads the registry). A 4xx answer is raised."""
        if not self.settings.use_host or not self.connected or self.breaker.state != "closed":
            return None
        assert self._nc is not None
        try:
            msg = await self._nc.request(
                subject, encode(body), timeout=self.settings.request_timeout_s
            )
            reply = decode_reply(msg.data, reply_type)
        except nats.errors.NoRespondersError:
            return None
        except nats.errors.TimeoutError:
            log.warning("router.host_timeout subject=%s: reading the registry", subject)
            return None
        except (ReplyDecodeError, *_BUS_ERRORS) as exc:
            log.warning("router.host_request_failed subject=%s error=%r", subject, exc)
            return None
        if isinstance(reply, ErrorReply):
            if 400 <= reply.code < 500:
                raise ServiceError.from_reply(reply)
            log.warning(
                "router.host_error subject=%s code=%d error_id=%s: reading the registry",
                subject,
                reply.code,
                reply.error_id,
            )
            return None
        return reply

    async def _record(self, task_id: str) -> JobRecord:
        if not self.connected or self._registry is None:
            raise HostUnavailable(
                f"job {task_id} is not in this process, and NATS (host trainer and job "
                "registry) is not reachable"
            )
        try:
            record = await self._registry.get(task_id)
        except _BUS_ERRORS as exc:
            raise HostUnavailable(f"could not read the job registry: {exc}") from exc
        if record is None:
            raise NotFound(f"no job with task id {task_id}")
        return record


def _prepared(request: StartTraining) -> StartTraining:
    """The request with a task id, validated as a host would validate it."""
    if request.task_id is None:
        request = msgspec.structs.replace(request, task_id=uuid.uuid4().hex)
    try:
        return decode_request(encode(request), StartTraining)
    except ContractError as exc:
        raise ServiceError.from_reply(exc.to_reply()) from exc


def _check_id(task_id: str) -> None:
    try:
        check_task_id(task_id)
    except ValueError as exc:
        raise BadRequest(str(exc), field="task_id") from exc


def _matches(status: TrainingStatus, query: ListJobs) -> bool:
    return (query.states is None or status.state in query.states) and (
        query.executor is None or status.executor == query.executor
    )
