"""The micro service over a real nats-server, with an in-memory JobService."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from prometheus_client import CollectorRegistry

from bus_contracts import (
    QUEUE_GROUP,
    SERVICE_NAME,
    Conflict,
    ErrorReply,
    HealthReport,
    JobList,
    ListJobs,
    NotFound,
    StartTraining,
    Subjects,
    TrainingAccepted,
    TrainingPerformance,
    TrainingStatus,
    decode_reply,
)
from bus_contracts.codec import ERROR_CODE_HEADER, ERROR_HEADER
from host_trainer.config import HostConfig
from host_trainer.metrics import HostMetrics
from host_trainer.service import TrainingHostService, service_version

pytestmark = pytest.mark.timeout(30)
TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Counts:
    running: int
    queued: int


class MemoryJobs:
    """A JobService that keeps jobs in a dict and never trains."""

    def __init__(self, host_id: str, subjects: Subjects) -> None:
        self.host_id = host_id
        self.subjects = subjects
        self.statuses: dict[str, TrainingStatus] = {}
        self.stop_reasons: dict[str, str] = {}
        self.fail_with: Exception | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def start(self, request: StartTraining) -> TrainingAccepted:
        self._check()
        task_id = request.task_id or uuid.uuid4().hex
        self.statuses[task_id] = TrainingStatus(
            task_id=task_id,
            state="queued",
            executor="host",
            host_id=self.host_id,
            symbols=list(request.symbols),
            timeframe=request.timeframe,
        )
        return TrainingAccepted(
            task_id=task_id,
            state="queued",
            executor="host",
            host_id=self.host_id,
            device=request.device,
            progress_subject=self.subjects.progress(task_id),
            queue_position=1,
        )

    async def status(self, task_id: str) -> TrainingStatus:
        self._check()
        if task_id not in self.statuses:
            raise NotFound(f"no job with task id {task_id}")
        return self.statuses[task_id]

    async def stop(self, task_id: str, reason: str) -> TrainingStatus:
        status = await self.status(task_id)
        self.stop_reasons[task_id] = reason
        self.statuses[task_id] = msgspec.structs.replace(status, state="cancelled")
        return self.statuses[task_id]

    async def performance(self, task_id: str) -> TrainingPerformance:
        status = await self.status(task_id)
        raise Conflict(f"job {task_id} is {status.state}; performance exists once it completed")

    async def jobs(self, query: ListJobs) -> JobList:
        jobs = list(self.statuses.values())
        return JobList(jobs=jobs[: query.limit], total=len(jobs))

    def counts(self) -> Counts:
        queued = sum(s.state == "queued" for s in self.statuses.values())
        return Counts(running=0, queued=queued)


@dataclass
class Host:
    service: TrainingHostService
    jobs: MemoryJobs
    subjects: Subjects
    registry: CollectorRegistry


@pytest.fixture
async def host(host_nc: Client, subjects: Subjects) -> AsyncIterator[Host]:
    config = HostConfig(host_id="test-host", subject_root=subjects.root)
    jobs = MemoryJobs(config.host_id, subjects)
    registry = CollectorRegistry()
    service = TrainingHostService(host_nc, jobs, config, metrics=HostMetrics(registry))
    await service.start()
    try:
        yield Host(service, jobs, subjects, registry)
    finally:
        await service.stop()


async def ask(nc: Client, subject: str, body: bytes = b"") -> tuple[bytes, dict[str, str]]:
    msg = await nc.request(subject, body, timeout=TIMEOUT_S)
    return msg.data, dict(msg.headers or {})


async def test_minimal_raw_json_start_is_accepted(host: Host, backend_nc: Client) -> None:
    data, headers = await ask(
        backend_nc, host.subjects.start, b'{"symbols":["SPX"],"timeframe":"1d"}'
    )
    assert ERROR_CODE_HEADER not in headers
    reply = decode_reply(data, TrainingAccepted)
    assert isinstance(reply, TrainingAccepted)
    assert reply.state == "queued"
    assert reply.host_id == "test-host"
    assert reply.progress_subject == host.subjects.progress(reply.task_id)
    assert json.loads(data)["type"] == "training.accepted"


async def test_request_right_after_start_finds_responders(
    host_nc: Client, backend_nc: Client
) -> None:
    for _ in range(20):
        subjects = Subjects(root=f"t{uuid.uuid4().hex[:8]}.training")
        config = HostConfig(host_id="race", subject_root=subjects.root)
        service = TrainingHostService(host_nc, MemoryJobs("race", subjects), config)
        await service.start()
        try:
            data, _ = await ask(backend_nc, subjects.health)
        finally:
            await service.stop()
        assert isinstance(decode_reply(data, HealthReport), HealthReport)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"symbols":["SPX"],"timeframe":"1d","epoch":5}', "epoch"),
        (b'{"symbols":["spx/../x"],"timeframe":"1d"}', "symbols[0]"),
        (b'{"symbols":["SPX"],"timeframe":"2d"}', "timeframe"),
        (b'{"timeframe":"1d"}', "symbols"),
    ],
)
async def test_bad_start_is_400_naming_the_field(
    host: Host, backend_nc: Client, body: bytes, field: str
) -> None:
    data, headers = await ask(backend_nc, host.subjects.start, body)
    assert headers[ERROR_CODE_HEADER] == "400"
    assert headers[ERROR_HEADER].startswith(f"{field}: ")
    reply = decode_reply(data, TrainingAccepted)
    assert isinstance(reply, ErrorReply)
    assert reply.code == 400
    assert reply.field == field
    assert host.jobs.statuses == {}


async def test_malformed_json_is_400(host: Host, backend_nc: Client) -> None:
    _, headers = await ask(backend_nc, host.subjects.start, b"{not json")
    assert headers[ERROR_CODE_HEADER] == "400"
    assert "malformed JSON" in headers[ERROR_HEADER]


async def test_unexpected_exception_is_500_with_logged_error_id(
    host: Host, backend_nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    host.jobs.fail_with = RuntimeError("secret path /srv/internal/db.sqlite exploded")
    with caplog.at_level(logging.ERROR, logger="host_trainer.service"):
        data, headers = await ask(
            backend_nc, host.subjects.start, b'{"symbols":["SPX"],"timeframe":"1d"}'
        )
    reply = decode_reply(data, TrainingAccepted)
    assert isinstance(reply, ErrorReply)
    assert reply.code == 500
    assert headers[ERROR_CODE_HEADER] == "500"
    assert reply.error_id and len(reply.error_id) == 12
    assert reply.error_id in reply.message
    for text in (data.decode(), *headers.values()):
        assert "secret" not in text
        assert "RuntimeError" not in text
        assert "Traceback" not in text
    [record] = [r for r in caplog.records if reply.error_id in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "secret path" in caplog.text
    assert "Traceback" in caplog.text
    health = host.service.health.basic()
    assert health.status == "degraded"


async def test_internal_error_without_id_gets_one(
    host: Host, backend_nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from bus_contracts import InternalError

    host.jobs.fail_with = InternalError("registry unavailable")
    with caplog.at_level(logging.ERROR, logger="host_trainer.service"):
        data, _ = await ask(backend_nc, host.subjects.status("job-1"))
    reply = decode_reply(data, TrainingStatus)
    assert isinstance(reply, ErrorReply)
    assert reply.code == 500
    assert reply.message == "registry unavailable"
    assert reply.error_id and reply.error_id in caplog.text


async def test_unknown_task_is_404(host: Host, backend_nc: Client) -> None:
    data, headers = await ask(backend_nc, host.subjects.status("nope-123"))
    assert headers[ERROR_CODE_HEADER] == "404"
    reply = decode_reply(data, TrainingStatus)
    assert isinstance(reply, ErrorReply)
    assert reply.message == "no job with task id nope-123"


async def test_bad_task_id_in_subject_is_400(host: Host, backend_nc: Client) -> None:
    data, headers = await ask(backend_nc, f"{host.subjects.root}.status.a$b")
    assert headers[ERROR_CODE_HEADER] == "400"
    reply = decode_reply(data, TrainingStatus)
    assert isinstance(reply, ErrorReply)
    assert reply.field == "task_id"


async def test_status_stop_performance_jobs(host: Host, backend_nc: Client) -> None:
    start = b'{"task_id":"job-7","symbols":["SPX"],"timeframe":"1d"}'
    await ask(backend_nc, host.subjects.start, start)

    data, _ = await ask(backend_nc, host.subjects.status("job-7"))
    status = decode_reply(data, TrainingStatus)
    assert isinstance(status, TrainingStatus)
    assert status.state == "queued"

    data, headers = await ask(backend_nc, host.subjects.status("job-7"), b'{"verbose":1}')
    assert headers[ERROR_CODE_HEADER] == "400"

    data, _ = await ask(backend_nc, host.subjects.performance("job-7"))
    conflict = decode_reply(data, TrainingPerformance)
    assert isinstance(conflict, ErrorReply)
    assert conflict.code == 409

    data, _ = await ask(backend_nc, host.subjects.stop("job-7"), b'{"reason":"changed my mind"}')
    stopped = decode_reply(data, TrainingStatus)
    assert isinstance(stopped, TrainingStatus)
    assert stopped.state == "cancelled"
    assert host.jobs.stop_reasons == {"job-7": "changed my mind"}

    data, _ = await ask(backend_nc, host.subjects.jobs, b'{"limit":5}')
    listing = decode_reply(data, JobList)
    assert isinstance(listing, JobList)
    assert [job.task_id for job in listing.jobs] == ["job-7"]

    data, headers = await ask(backend_nc, host.subjects.jobs, b'{"limit":0}')
    assert headers[ERROR_CODE_HEADER] == "400"
    assert headers[ERROR_HEADER].startswith("limit: ")


async def test_health_basic_and_detailed(host: Host, backend_nc: Client) -> None:
    data, _ = await ask(backend_nc, host.subjects.health)
    basic = decode_reply(data, HealthReport)
    assert isinstance(basic, HealthReport)
    assert basic.status == "ok"
    assert basic.host_id == "test-host"
    assert basic.devices == []

    data, _ = await ask(backend_nc, host.subjects.health, b'{"detailed":true}')
    detailed = decode_reply(data, HealthReport)
    assert isinstance(detailed, HealthReport)
    assert detailed.devices[0].device == "cpu"
    assert detailed.rss_bytes
    assert detailed.request_latency["health"].count >= 1


async def test_latency_and_metrics_recorded(host: Host, backend_nc: Client) -> None:
    await ask(backend_nc, host.subjects.start, b'{"symbols":["SPX"],"timeframe":"1d"}')
    await ask(backend_nc, host.subjects.status("missing"))
    start = host.service.health.latency.summary("start")
    assert start is not None
    assert start.count == 1
    assert 0 < start.p50_s < TIMEOUT_S
    r = host.registry
    duration = "training_host_request_duration_seconds_count"
    assert r.get_sample_value(duration, {"endpoint": "start"}) == 1
    assert r.get_sample_value(duration, {"endpoint": "status"}) == 1
    errors = "training_host_request_errors_total"
    assert r.get_sample_value(errors, {"endpoint": "status", "code": "404"}) == 1
    assert r.get_sample_value("training_host_jobs_queued") == 1


async def test_micro_discovery(host: Host, backend_nc: Client) -> None:
    service_id = host.service.service_id
    assert service_id

    data, _ = await ask(backend_nc, f"$SRV.PING.{SERVICE_NAME}.{service_id}")
    ping = json.loads(data)
    assert ping["type"] == "io.nats.micro.v1.ping_response"
    assert ping["name"] == SERVICE_NAME
    assert ping["version"] == service_version()
    assert ping["metadata"]["host_id"] == "test-host"

    data, _ = await ask(backend_nc, f"$SRV.PING.{SERVICE_NAME}")
    assert json.loads(data)["name"] == SERVICE_NAME

    data, _ = await ask(backend_nc, f"$SRV.INFO.{SERVICE_NAME}.{service_id}")
    info = json.loads(data)
    endpoints = {e["name"]: e for e in info["endpoints"]}
    root = host.subjects.root
    assert endpoints["start"]["subject"] == f"{root}.start"
    assert endpoints["status"]["subject"] == f"{root}.status.*"
    assert endpoints["stop"]["subject"] == f"{root}.stop.*"
    assert endpoints["performance"]["subject"] == f"{root}.performance.*"
    assert endpoints["jobs"]["subject"] == f"{root}.jobs"
    assert endpoints["health"]["subject"] == f"{root}.health"
    assert {e["queue_group"] for e in endpoints.values()} == {QUEUE_GROUP}

    await ask(backend_nc, host.subjects.status("missing"))
    data, _ = await ask(backend_nc, f"$SRV.STATS.{SERVICE_NAME}.{service_id}")
    stats = {e["name"]: e for e in json.loads(data)["endpoints"]}
    assert stats["status"]["num_requests"] == 1
    assert stats["status"]["data"]["errors_by_code"] == {"404": 1}
    assert stats["status"]["data"]["p99_s"] > 0


async def test_queue_group_spreads_starts_over_hosts(
    host: Host, host_nc: Client, backend_nc: Client
) -> None:
    other_jobs = MemoryJobs("other-host", host.subjects)
    config = HostConfig(host_id="other-host", subject_root=host.subjects.root)
    other = TrainingHostService(host_nc, other_jobs, config)
    await other.start()
    try:
        body = b'{"symbols":["SPX"],"timeframe":"1d"}'
        replies = [await ask(backend_nc, host.subjects.start, body) for _ in range(40)]
    finally:
        await other.stop()
    hosts = [json.loads(data)["host_id"] for data, _ in replies]
    assert len(hosts) == 40
    assert set(hosts) == {"test-host", "other-host"}
    assert len(host.jobs.statuses) + len(other_jobs.statuses) == 40


async def test_drain_then_stop(host: Host, backend_nc: Client) -> None:
    host.service.begin_drain()
    data, headers = await ask(
        backend_nc, host.subjects.start, b'{"symbols":["SPX"],"timeframe":"1d"}'
    )
    assert headers[ERROR_CODE_HEADER] == "503"
    assert "shutting down" in headers[ERROR_HEADER]
    data, _ = await ask(backend_nc, host.subjects.health)
    health = decode_reply(data, HealthReport)
    assert isinstance(health, HealthReport)
    assert health.status == "draining"
    assert not health.accepting_jobs
    assert host.service.health.errors.count() == 0  # 503 is not an internal error

    await host.service.stop()
    with pytest.raises(NoRespondersError):
        await backend_nc.request(host.subjects.health, b"", timeout=TIMEOUT_S)


async def test_publish_without_reply_is_handled(host: Host, backend_nc: Client) -> None:
    await ask(backend_nc, host.subjects.start, b'{"task_id":"j1","symbols":["A"],"timeframe":"1d"}')
    await backend_nc.publish(host.subjects.stop("j1"), b"")
    await backend_nc.flush()
    for _ in range(100):
        if "j1" in host.jobs.stop_reasons:
            break
        await asyncio.sleep(0.01)
    assert host.jobs.stop_reasons == {"j1": "requested by user"}


def test_package_exports_every_public_class_and_function() -> None:
    import ast
    import importlib
    import inspect

    import host_trainer

    exported = set(host_trainer.__all__)
    assert len(exported) == len(host_trainer.__all__)
    for name in exported:
        assert getattr(host_trainer, name) is not None
    for module_name in ("config", "health", "metrics", "service", "logging_setup"):
        module = importlib.import_module(f"host_trainer.{module_name}")
        tree = ast.parse(inspect.getsource(module))
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and not node.name.startswith("_")
        }
        assert defined <= exported, (module_name, defined - exported)
