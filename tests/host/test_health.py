"""Health reports, latency windows, the error window and the device probe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from bus_contracts.messages.health import HealthReport
from host_trainer.config import HostConfig
from host_trainer.health import (
    DeviceProbe,
    ErrorWindow,
    HealthMonitor,
    LatencyTracker,
    parse_smi,
)

pytestmark = pytest.mark.timeout(10)


@dataclass
class Counts:
    running: int = 0
    queued: int = 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_latency_tracker_percentiles_and_window() -> None:
    tracker = LatencyTracker(window=100)
    for ms in range(1, 201):  # only the last 100 (101..200 ms) stay
        tracker.observe("status", ms / 1000)
    summary = tracker.summary("status")
    assert summary is not None
    assert summary.count == 100
    assert summary.p50_s == pytest.approx(0.150)
    assert summary.p99_s == pytest.approx(0.199)
    assert tracker.summary("start") is None
    tracker.observe("start", 0.5)
    assert list(tracker.summaries()) == ["start", "status"]
    assert tracker.summaries()["start"].p99_s == 0.5


def test_error_window_forgets_old_errors() -> None:
    clock = FakeClock()
    errors = ErrorWindow(horizon_s=900, clock=clock)
    errors.record()
    clock.now += 600
    errors.record()
    assert errors.count() == 2
    assert errors.count(within_s=60) == 1
    clock.now += 301
    assert errors.count() == 1
    clock.now += 600
    assert errors.count() == 0


def test_parse_nvidia_smi() -> None:
    devices = parse_smi("0, NVIDIA H200, 143771, 512, 7\n1, NVIDIA H200, 143771, [N/A], [N/A]\n")
    assert [d.device for d in devices] == ["cuda:0", "cuda:1"]
    assert devices[0].name == "NVIDIA H200"
    assert devices[0].memory_total_bytes == 143771 * 1024 * 1024
    assert devices[0].memory_used_bytes == 512 * 1024 * 1024
    assert devices[0].utilization_ratio == pytest.approx(0.07)
    assert devices[1].memory_used_bytes is None
    assert devices[1].utilization_ratio is None


def test_device_probe_always_lists_cpu_and_caches() -> None:
    clock = FakeClock()
    probe = DeviceProbe(cache_s=5, clock=clock)
    first = probe.devices()
    assert first[0].device == "cpu"
    assert first[0].memory_total_bytes and first[0].memory_total_bytes > 0
    assert probe.devices() is first
    clock.now += 6
    assert probe.devices() is not first
    assert probe.source in ("nvml", "nvidia-smi", "none")
    if probe.source == "none":
        assert all(d.device in ("cpu", "mps") for d in first)


def monitor(
    tmp_path: Path, counts: Counts, clock: FakeClock, accepting: bool = True
) -> HealthMonitor:
    config = HostConfig(host_id="box-1", models_dir=tmp_path / "models", max_queued_jobs=2)
    return HealthMonitor(config, lambda: counts, accepting=lambda: accepting, clock=clock)


def test_basic_report(tmp_path: Path) -> None:
    clock = FakeClock()
    counts = Counts(running=1, queued=1)
    health = monitor(tmp_path, counts, clock)
    clock.now += 12.5
    report = health.basic()
    assert isinstance(report, HealthReport)
    assert report.status == "ok"
    assert report.host_id == "box-1"
    assert report.version
    assert report.uptime_s == 12.5
    assert (report.jobs_running, report.jobs_queued) == (1, 1)
    assert report.max_concurrent_jobs == 1
    assert report.accepting_jobs
    assert report.devices == []
    assert report.rss_bytes is None
    counts.queued = 2  # slots and queue full
    assert not health.basic().accepting_jobs
    assert health.basic().status == "ok"


def test_degraded_after_internal_error_then_ok_again(tmp_path: Path) -> None:
    clock = FakeClock()
    health = monitor(tmp_path, Counts(), clock)
    health.errors.record()
    assert health.basic().status == "degraded"
    clock.now += 61
    assert health.basic().status == "ok"


def test_draining(tmp_path: Path) -> None:
    clock = FakeClock()
    health = monitor(tmp_path, Counts(), clock)
    health.draining = True
    report = health.basic()
    assert report.status == "draining"
    assert not report.accepting_jobs
    assert monitor(tmp_path, Counts(), clock, accepting=False).basic().status == "draining"


async def test_detailed_report(tmp_path: Path) -> None:
    clock = FakeClock()
    health = monitor(tmp_path, Counts(), clock)
    health.latency.observe("health", 0.001)
    health.errors.record()
    report = await health.detailed()
    assert report.devices[0].device == "cpu"
    assert report.rss_bytes and report.rss_bytes > 1_000_000
    assert report.system_memory_total_bytes and report.system_memory_available_bytes
    assert report.disk_free_bytes and report.disk_free_bytes > 0  # models_dir not made yet
    assert report.recent_errors == 1
    assert report.request_latency["health"].count == 1
    # the JSON a client gets carries every detail
    decoded = msgspec.json.decode(msgspec.json.encode(report), type=HealthReport)
    assert decoded == report
