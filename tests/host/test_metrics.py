"""Prometheus metrics on a fresh registry, and the loopback /metrics endpoint."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from bus_contracts.messages.health import DeviceInfo
from host_trainer.metrics import HostMetrics, package_version, serve_metrics

pytestmark = pytest.mark.timeout(20)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_names_labels_and_units() -> None:
    registry = CollectorRegistry()
    metrics = HostMetrics(registry)
    metrics.set_jobs(running=1, queued=3)
    metrics.job_finished("completed", 600.0)
    metrics.job_finished("failed")
    metrics.add_samples(1000)
    metrics.observe_request("start", 0.002)
    metrics.observe_request("status", 0.001, code=404)
    metrics.set_devices(
        [
            DeviceInfo(device="cpu", name="x", memory_total_bytes=8, memory_used_bytes=4),
            DeviceInfo(
                device="cuda:0",
                name="H200",
                memory_total_bytes=100,
                memory_used_bytes=40,
                utilization_ratio=0.5,
            ),
        ]
    )
    p = "training_host_"
    assert sample(registry, p + "jobs_active") == 1
    assert sample(registry, p + "jobs_queued") == 3
    assert sample(registry, p + "jobs_finished_total", outcome="completed") == 1
    assert sample(registry, p + "jobs_finished_total", outcome="failed") == 1
    assert sample(registry, p + "jobs_finished_total", outcome="cancelled") == 0
    assert sample(registry, p + "job_duration_seconds_count") == 1
    assert sample(registry, p + "job_duration_seconds_bucket", le="3600.0") == 1
    assert sample(registry, p + "samples_trained_total") == 1000
    assert sample(registry, p + "request_duration_seconds_count", endpoint="start") == 1
    assert sample(registry, p + "request_errors_total", endpoint="status", code="404") == 1
    assert sample(registry, p + "gpu_memory_used_bytes", device="cuda:0") == 40
    assert sample(registry, p + "gpu_memory_total_bytes", device="cuda:0") == 100
    assert sample(registry, p + "gpu_utilization_ratio", device="cuda:0") == 0.5
    assert sample(registry, p + "gpu_memory_used_bytes", device="cpu") is None
    [info] = [s for m in registry.collect() if m.name == p + "build_info" for s in m.samples]
    assert info.value == 1
    assert info.labels["version"] == package_version()
    assert info.labels["python"] == platform.python_version()
    assert info.labels["torch"] == (package_version("torch") or "")


def test_no_job_ids_in_labels() -> None:
    registry = CollectorRegistry()
    HostMetrics(registry)
    allowed = {"outcome", "device", "endpoint", "code", "version", "python", "torch", "le"}
    for metric in registry.collect():
        for s in metric.samples:
            assert set(s.labels) <= allowed, (metric.name, s.labels)
            assert s.name.startswith("training_host_")


def test_each_registry_is_independent() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    HostMetrics(one).add_samples(5)
    HostMetrics(two)
    assert sample(two, "training_host_samples_trained_total") == 0


def _outward_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_metrics_endpoint_on_loopback_only() -> None:
    registry = CollectorRegistry()
    HostMetrics(registry).set_jobs(running=2, queued=0)
    server, port = serve_metrics(registry, "127.0.0.1", 0)
    try:
        assert port > 0
        assert server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(server.url, timeout=5) as response:
            body = response.read().decode()
        assert "training_host_jobs_active 2.0" in body
        assert "training_host_build_info{" in body
        outward = _outward_address()
        if outward is not None:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((outward, port), timeout=1).close()
    finally:
        server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_service_modules_do_not_import_torch() -> None:
    code = (
        "import sys, host_trainer.metrics, host_trainer.health, host_trainer.service, "
        "host_trainer.config; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"
