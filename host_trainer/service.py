"""The host trainer on the bus: a ``nats.micro`` service with one endpoint per subject.

Every endpoint is in the queue group :data:`~bus_contracts.subjects.QUEUE_GROUP`,
so each request reaches exactly one host: ``start`` is load-balanced, and any
host answers ``status``/``performance``/``jobs`` from the shared registry and
passes ``stop`` on to wherever the job runs.

A handler decodes strictly, asks the :class:`JobService`, and answers: the reply,
or an :class:`ErrorReply` with the micro error headers. No exception ever reaches
``nats.micro`` (it would send ``repr(exc)`` to the caller); an unexpected one
becomes a 500 whose error id is in the log next to the traceback. ``nats.micro``
runs one request at a time per endpoint, so a JobService answers quickly and
leaves the training to its workers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import SEMVER_REGEX, EndpointStats, Service

from bus_contracts.codec import decode_request, encode, error_headers
from bus_contracts.errors import AtCapacity, ContractError, ServiceError
from bus_contracts.messages.errors import ErrorReply
from bus_contracts.messages.health import HealthRequest
from bus_contracts.messages.jobs import JobList, ListJobs
from bus_contracts.messages.performance import PerformanceRequest, TrainingPerformance
from bus_contracts.messages.start import StartTraining, TrainingAccepted
from bus_contracts.messages.status import StatusRequest, StopTraining, TrainingStatus
from bus_contracts.subjects import QUEUE_GROUP, SERVICE_NAME, Subjects, check_task_id
from host_trainer.config import HostConfig
from host_trainer.health import HealthMonitor, JobCounts
from host_trainer.metrics import HostMetrics, package_version

log = logging.getLogger(__name__)

ENDPOINTS = ("start", "status", "stop", "performance", "jobs", "health")
_AT_CAPACITY = AtCapacity.default_code


class JobService(Protocol):
    """What the endpoints ask; every call answers in milliseconds and raises
    :class:`~bus_contracts.errors.ServiceError` subclasses for 4xx/5xx answers."""

    async def start(self, request: StartTraining) -> TrainingAccepted: ...

    async def status(self, task_id: str) -> TrainingStatus: ...

    async def stop(self, task_id: str, reason: str) -> TrainingStatus: ...

    async def performance(self, task_id: str) -> TrainingPerformance: ...

    async def jobs(self, query: ListJobs) -> JobList: ...

    def counts(self) -> JobCounts: ...


Answer = Callable[[Request], Awaitable[msgspec.Struct]]


def new_error_id() -> str:
    return uuid.uuid4().hex[:12]


def service_version() -> str:
    """The package version when it is valid semver (micro insists), else 0.0.0."""
    version = package_version()
    return version if version and SEMVER_REGEX.match(version) else "0.0.0"


class TrainingHostService:
    """The micro service of one host. ``await start()``, later ``begin_drain()``
    (starts answer 503, health says draining) and ``await stop()``."""

    def __init__(
        self,
        nc: Client,
        jobs: JobService,
        config: HostConfig,
        *,
        subjects: Subjects | None = None,
        metrics: HostMetrics | None = None,
        health: HealthMonitor | None = None,
    ) -> None:
        self._nc = nc
        self._jobs = jobs
        self.config = config
        self.subjects = subjects or config.subjects
        self.metrics = metrics
        self.health = health or HealthMonitor(config, jobs.counts)
        self._service: Service | None = None
        self._errors: dict[str, Counter[int]] = {name: Counter() for name in ENDPOINTS}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def service_id(self) -> str | None:
        """The micro instance id (``$SRV.INFO.training-host.<id>``) while started."""
        return None if self._service is None else str(self._service.id)

    @property
    def draining(self) -> bool:
        return self.health.draining

    def update_config(self, config: HostConfig) -> None:
        """Reloaded limits, for health answers."""
        self.config = config
        self.health.config = config

    async def start(self) -> None:
        if self._service is not None:
            return
        self._service = await add_service(
            self._nc,
            name=SERVICE_NAME,
            version=service_version(),
            description="GPU training host: start, watch and stop training jobs",
            metadata={"host_id": self.config.host_id, "subject_root": self.subjects.root},
            queue_group=QUEUE_GROUP,
            stats_handler=self._endpoint_stats,
        )
        root = self.subjects.root
        routes: dict[str, tuple[str, Answer]] = {
            "start": (self.subjects.start, self._start),
            "status": (f"{root}.status.*", self._status),
            "stop": (f"{root}.stop.*", self._stop),
            "performance": (f"{root}.performance.*", self._performance),
            "jobs": (self.subjects.jobs, self._list_jobs),
            "health": (self.subjects.health, self._health),
        }
        for name, (subject, answer) in routes.items():
            await self._service.add_endpoint(
                name=name, subject=subject, handler=self._handler(name, answer)
            )
        # add_endpoint never flushes, and one flush may overtake the SUBs: a request
        # right after start() could see no responders (PITFALLS.md).
        await asyncio.sleep(0)
        await self._nc.flush()
        await self._nc.flush()
        log.info(
            "service.started name=%s id=%s host_id=%s root=%s",
            SERVICE_NAME,
            self._service.id,
            self.config.host_id,
            root,
        )

    def begin_drain(self) -> None:
        """Stop taking jobs: ``start`` answers 503 so the caller goes elsewhere;
        the other endpoints keep answering until :meth:`stop`."""
        if not self.health.draining:
            self.health.draining = True
            log.info("service.draining host_id=%s", self.config.host_id)

    async def stop(self, timeout_s: float = 1.0) -> None:
        """Drain, let requests in progress finish (bounded), then unsubscribe."""
        self.begin_drain()
        service, self._service = self._service, None
        if service is None:
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("service.stop_busy in_flight=%d", self._in_flight)
        if self._nc.is_closed:
            return
        try:
            await asyncio.wait_for(service.stop(), timeout_s)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            log.warning("service.stop_incomplete error=%s", exc)
        log.info("service.stopped host_id=%s", self.config.host_id)

    # ---- request handling -------------------------------------------------------

    def _handler(self, endpoint: str, answer: Answer) -> Callable[[Request], Awaitable[None]]:
        async def handle(request: Request) -> None:
            self._in_flight += 1
            self._idle.clear()
            try:
                await self._handle(endpoint, answer, request)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        return handle

    async def _handle(self, endpoint: str, answer: Answer, request: Request) -> None:
        began = time.perf_counter()
        subject = request.subject
        error: ErrorReply | None = None
        try:
            reply = await answer(request)
        except ContractError as exc:
            error = exc.to_reply()
        except ServiceError as exc:
            error = exc.to_reply()
            if exc.code >= 500 and exc.code != _AT_CAPACITY and not exc.error_id:
                error = msgspec.structs.replace(error, error_id=new_error_id())
                log.error(
                    "request.failed endpoint=%s subject=%s error_id=%s code=%d",
                    endpoint, subject, error.error_id, exc.code, exc_info=True,
                )  # fmt: skip
        except Exception:
            error_id = new_error_id()
            log.exception(
                "request.failed endpoint=%s subject=%s error_id=%s", endpoint, subject, error_id
            )
            error = ErrorReply(
                code=500,
                message=f"internal error; error id {error_id} is in the host's log",
                error_id=error_id,
            )
        if error is None:
            await self._respond(request, encode(reply), None)
        else:
            self._record_error(endpoint, subject, error)
            await self._respond(request, encode(error), error_headers(error))
        seconds = time.perf_counter() - began
        self.health.latency.observe(endpoint, seconds)
        if self.metrics is not None:
            self.metrics.observe_request(endpoint, seconds, None if error is None else error.code)
            if endpoint in ("start", "stop"):
                self._refresh_job_gauges()

    def _record_error(self, endpoint: str, subject: str, error: ErrorReply) -> None:
        self._errors[endpoint][error.code] += 1
        if error.code >= 500 and error.code != _AT_CAPACITY:
            self.health.errors.record()
        elif error.code < 500:
            log.info(
                "request.rejected endpoint=%s subject=%s code=%d field=%s message=%s",
                endpoint, subject, error.code, error.field, error.message,
            )  # fmt: skip

    async def _respond(self, request: Request, data: bytes, headers: dict[str, str] | None) -> None:
        try:
            await request.respond(data, headers=headers)
        except ValueError:  # published without a reply subject: nobody to tell
            log.debug("request.no_reply_subject subject=%s", request.subject)
        except Exception as exc:  # noqa: BLE001 - a lost reply must not reach micro
            log.warning("request.reply_failed subject=%s error=%s", request.subject, exc)

    def _refresh_job_gauges(self) -> None:
        assert self.metrics is not None
        try:
            counts = self._jobs.counts()
        except Exception:  # a gauge must never fail a request (logged with traceback)
            log.warning("metrics.counts_failed", exc_info=True)
            return
        self.metrics.set_jobs(running=counts.running, queued=counts.queued)

    def _endpoint_stats(self, stats: EndpointStats) -> dict[str, Any]:
        """Extra figures in ``$SRV.STATS`` (``nats micro stats``) per endpoint."""
        data: dict[str, Any] = {
            "errors_by_code": {str(code): n for code, n in self._errors[stats.name].items()}
        }
        summary = self.health.latency.summary(stats.name)
        if summary is not None:
            data.update(p50_s=summary.p50_s, p99_s=summary.p99_s, window=summary.count)
        return data

    # ---- the endpoints ----------------------------------------------------------

    async def _start(self, request: Request) -> msgspec.Struct:
        start = decode_request(request.data, StartTraining)
        if self.health.draining:
            raise AtCapacity(f"host {self.config.host_id} is shutting down; not taking jobs")
        accepted = await self._jobs.start(start)
        log.info(
            "request.start_accepted subject=%s task_id=%s state=%s",
            request.subject, accepted.task_id, accepted.state,
        )  # fmt: skip
        return accepted

    async def _status(self, request: Request) -> msgspec.Struct:
        task_id = _task_id(request.subject)
        decode_request(request.data, StatusRequest)
        return await self._jobs.status(task_id)

    async def _stop(self, request: Request) -> msgspec.Struct:
        task_id = _task_id(request.subject)
        stop = decode_request(request.data, StopTraining)
        log.info(
            "request.stop subject=%s task_id=%s reason=%s", request.subject, task_id, stop.reason
        )
        return await self._jobs.stop(task_id, stop.reason)

    async def _performance(self, request: Request) -> msgspec.Struct:
        task_id = _task_id(request.subject)
        decode_request(request.data, PerformanceRequest)
        return await self._jobs.performance(task_id)

    async def _list_jobs(self, request: Request) -> msgspec.Struct:
        return await self._jobs.jobs(decode_request(request.data, ListJobs))

    async def _health(self, request: Request) -> msgspec.Struct:
        query = decode_request(request.data, HealthRequest)
        return await self.health.detailed() if query.detailed else self.health.basic()


def _task_id(subject: str) -> str:
    """The task id that ends ``<root>.<verb>.<id>``; 400 naming ``task_id`` if bad."""
    token = subject.rsplit(".", 1)[-1]
    try:
        return check_task_id(token)
    except ValueError:
        raise ContractError(
            "task_id", "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'"
        ) from None
