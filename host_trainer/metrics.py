"""Prometheus metrics of one host trainer, and the loopback ``/metrics`` endpoint.

Everything is built against a registry passed in, so each test (and each host in
one process) has its own. Names use base units (``_seconds``, ``_bytes``,
``_ratio``); there are no per-job labels, so the series count stays fixed however
many jobs run. The service process never imports torch: its version comes from
the installed package's metadata.
"""

from __future__ import annotations

import importlib.metadata
import platform
import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from bus_contracts.messages.health import DeviceInfo

PREFIX = "training_host"
PACKAGE = "gpu-training-host"

JOB_DURATION_BUCKETS_S = (
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
    7200.0, 14400.0, 28800.0, 86400.0,
)  # fmt: skip
"""Jobs run for minutes to hours."""

REQUEST_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Requests are answered in about a millisecond; anything near a second is a problem."""

OUTCOMES = ("completed", "failed", "cancelled", "lost")


def package_version(name: str = PACKAGE) -> str | None:
    """An installed distribution's version, without importing it."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class HostMetrics:
    """The host trainer's metrics on ``registry``; the job manager and the service
    feed them through the methods below (or the metric objects directly)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        p = PREFIX
        self.jobs_active = Gauge(f"{p}_jobs_active", "Jobs running now.", registry=registry)
        self.jobs_queued = Gauge(
            f"{p}_jobs_queued", "Jobs waiting for a free slot.", registry=registry
        )
        self.jobs_finished = Counter(
            f"{p}_jobs_finished",
            "Jobs that reached a final state, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.job_duration = Histogram(
            f"{p}_job_duration_seconds",
            "Wall time of finished jobs, from start to final state.",
            buckets=JOB_DURATION_BUCKETS_S,
            registry=registry,
        )
        self.samples_trained = Counter(
            f"{p}_samples_trained", "Training samples processed (all epochs).", registry=registry
        )
        self.gpu_memory_used = Gauge(
            f"{p}_gpu_memory_used_bytes", "GPU memory in use.", ["device"], registry=registry
        )
        self.gpu_memory_total = Gauge(
            f"{p}_gpu_memory_total_bytes", "GPU memory in all.", ["device"], registry=registry
        )
        self.gpu_utilization = Gauge(
            f"{p}_gpu_utilization_ratio",
            "GPU busy ratio 0-1 (NVML; absent where NVML is not).",
            ["device"],
            registry=registry,
        )
        self.request_duration = Histogram(
            f"{p}_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.request_errors = Counter(
            f"{p}_request_errors",
            "Requests answered with an error, by endpoint and code.",
            ["endpoint", "code"],
            registry=registry,
        )
        self.build_info = Gauge(
            f"{p}_build_info",
            "Always 1; the labels say what runs.",
            ["version", "python", "torch"],
            registry=registry,
        )
        self.build_info.labels(
            version=package_version() or "unknown",
            python=platform.python_version(),
            torch=package_version("torch") or "",
        ).set(1)
        for outcome in OUTCOMES:
            self.jobs_finished.labels(outcome=outcome)

    def set_jobs(self, *, running: int, queued: int) -> None:
        self.jobs_active.set(running)
        self.jobs_queued.set(queued)

    def job_finished(self, outcome: str, duration_s: float | None = None) -> None:
        self.jobs_finished.labels(outcome=outcome).inc()
        if duration_s is not None:
            self.job_duration.observe(duration_s)

    def add_samples(self, count: int) -> None:
        if count > 0:
            self.samples_trained.inc(count)

    def observe_request(self, endpoint: str, seconds: float, code: int | None = None) -> None:
        """One answered request; ``code`` is the error code, None on success."""
        self.request_duration.labels(endpoint=endpoint).observe(seconds)
        if code is not None:
            self.request_errors.labels(endpoint=endpoint, code=str(code)).inc()

    def set_devices(self, devices: Iterable[DeviceInfo]) -> None:
        """GPU gauges from a device probe; CPU entries are skipped."""
        for info in devices:
            if info.device == "cpu":
                continue
            if info.memory_used_bytes is not None:
                self.gpu_memory_used.labels(device=info.device).set(info.memory_used_bytes)
            if info.memory_total_bytes is not None:
                self.gpu_memory_total.labels(device=info.device).set(info.memory_total_bytes)
            if info.utilization_ratio is not None:
                self.gpu_utilization.labels(device=info.device).set(info.utilization_ratio)


class MetricsServer:
    """A running ``/metrics`` HTTP server (a daemon thread); :meth:`stop` ends it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and close the socket (blocks up to half a second)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


def serve_metrics(
    registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0
) -> tuple[MetricsServer, int]:
    """Serve ``registry`` on ``http://host:port/metrics``; port 0 picks a free one.
    Returns the server and the port it really listens on."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    handle = MetricsServer(server, thread)
    return handle, handle.port
