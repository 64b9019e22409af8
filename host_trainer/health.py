"""What ``training.health`` answers: is this host up, how loaded, and on request
the details (devices, memory, disk, recent errors, request latency).

The service process never imports torch, so devices come from NVML (``pynvml``
when installed), else ``nvidia-smi``, else the CPU alone (plus ``mps`` on Apple
silicon, without memory figures: they would be guesses). NVML numbers GPUs in PCI
bus order; CUDA does too when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
"""

from __future__ import annotations

import asyncio
import bisect
import importlib
import logging
import platform
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec
import psutil

from bus_contracts.messages.health import DeviceInfo, HealthReport, LatencySummary
from host_trainer.config import HostConfig
from host_trainer.metrics import package_version

log = logging.getLogger(__name__)

Clock = Callable[[], float]
RECENT_ERRORS_WINDOW_S = 15 * 60.0
DEGRADED_WINDOW_S = 60.0
"""An internal error within this long marks the host ``degraded``."""
_MIB = 1024 * 1024


class JobCounts(Protocol):
    """How many jobs a host runs and holds in its queue."""

    @property
    def running(self) -> int: ...

    @property
    def queued(self) -> int: ...


class LatencyTracker:
    """The last ``window`` request durations per endpoint, for p50/p99."""

    def __init__(self, window: int = 512) -> None:
        self._window = window
        self._samples: dict[str, deque[float]] = {}

    def observe(self, endpoint: str, seconds: float) -> None:
        samples = self._samples.get(endpoint)
        if samples is None:
            samples = self._samples[endpoint] = deque(maxlen=self._window)
        samples.append(seconds)

    def summary(self, endpoint: str) -> LatencySummary | None:
        samples = self._samples.get(endpoint)
        if not samples:
            return None
        ordered = sorted(samples)
        return LatencySummary(
            count=len(ordered), p50_s=_quantile(ordered, 0.50), p99_s=_quantile(ordered, 0.99)
        )

    def summaries(self) -> dict[str, LatencySummary]:
        return {
            endpoint: summary
            for endpoint in sorted(self._samples)
            if (summary := self.summary(endpoint)) is not None
        }


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted samples."""
    index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
    return ordered[index]


class ErrorWindow:
    """Times of recent errors, forgotten after ``horizon_s``."""

    def __init__(self, horizon_s: float = RECENT_ERRORS_WINDOW_S, clock: Clock = time.monotonic):
        self._horizon_s = horizon_s
        self._clock = clock
        self._times: deque[float] = deque()

    def record(self) -> None:
        self._times.append(self._clock())
        self._forget()

    def count(self, within_s: float | None = None) -> int:
        self._forget()
        since = self._clock() - (self._horizon_s if within_s is None else within_s)
        times = list(self._times)
        return len(times) - bisect.bisect_left(times, since)

    def _forget(self) -> None:
        oldest = self._clock() - self._horizon_s
        while self._times and self._times[0] < oldest:
            self._times.popleft()


class DeviceProbe:
    """Lists the devices this host could train on, without torch; cached briefly
    because ``nvidia-smi`` takes tens of milliseconds."""

    def __init__(self, cache_s: float = 2.0, clock: Clock = time.monotonic) -> None:
        self._cache_s = cache_s
        self._clock = clock
        self._cached: tuple[float, list[DeviceInfo]] | None = None
        self._nvml: Any = _load_nvml()

    @property
    def source(self) -> Literal["nvml", "nvidia-smi", "none"]:
        if self._nvml is not None:
            return "nvml"
        return "nvidia-smi" if shutil.which("nvidia-smi") else "none"

    def devices(self) -> list[DeviceInfo]:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._cache_s:
            return self._cached[1]
        found = [_cpu(), *self._accelerators()]
        self._cached = (now, found)
        return found

    def _accelerators(self) -> list[DeviceInfo]:
        try:
            if self._nvml is not None:
                return _nvml_devices(self._nvml)
            if shutil.which("nvidia-smi"):
                return _smi_devices()
        except Exception as exc:  # noqa: BLE001 - a broken driver must not break health
            log.warning("health.gpu_probe_failed error=%s", exc)
            return []
        if sys.platform == "darwin" and platform.machine() == "arm64":
            return [DeviceInfo(device="mps", name="Apple GPU (unified memory)")]
        return []


def _load_nvml() -> Any:
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no pynvml, or NVMLError: no driver
        return None
    return nvml


def _nvml_devices(nvml: Any) -> list[DeviceInfo]:  # pragma: gpu
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            utilization: float | None = nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported on some boards
            utilization = None
        found.append(
            DeviceInfo(
                device=f"cuda:{index}",
                name=name.decode() if isinstance(name, bytes) else str(name),
                memory_total_bytes=int(memory.total),
                memory_used_bytes=int(memory.used),
                utilization_ratio=utilization,
            )
        )
    return found


def _smi_devices() -> list[DeviceInfo]:
    query = "index,name,memory.total,memory.used,utilization.gpu"
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=3,
        check=True,
    ).stdout
    return parse_smi(out)


def parse_smi(text: str) -> list[DeviceInfo]:
    """Rows of ``index, name, memory.total MiB, memory.used MiB, utilization %``."""
    found = []
    for line in text.strip().splitlines():
        index, name, total, used, utilization = (cell.strip() for cell in line.split(","))
        found.append(
            DeviceInfo(
                device=f"cuda:{int(index)}",
                name=name,
                memory_total_bytes=_number(total, _MIB),
                memory_used_bytes=_number(used, _MIB),
                utilization_ratio=None if (u := _number(utilization, 1)) is None else u / 100,
            )
        )
    return found


def _number(cell: str, scale: int) -> int | None:
    try:
        return int(float(cell) * scale)
    except ValueError:  # "[N/A]" on some boards
        return None


def _cpu() -> DeviceInfo:
    memory = psutil.virtual_memory()
    return DeviceInfo(
        device="cpu",
        name=platform.processor() or platform.machine() or "cpu",
        memory_total_bytes=int(memory.total),
        memory_used_bytes=int(memory.total - memory.available),
    )


class HealthMonitor:
    """Builds :class:`HealthReport`s from the job counts and what the service saw."""

    def __init__(
        self,
        config: HostConfig,
        counts: Callable[[], JobCounts],
        *,
        accepting: Callable[[], bool] | None = None,
        latency: LatencyTracker | None = None,
        errors: ErrorWindow | None = None,
        probe: DeviceProbe | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.latency = latency or LatencyTracker()
        self.errors = errors or ErrorWindow(clock=clock)
        self.probe = probe or DeviceProbe()
        self.draining = False
        self.version = package_version() or "0.0.0"
        self._counts = counts
        self._accepting = accepting or (lambda: True)
        self._clock = clock
        self._started = clock()
        self._process = psutil.Process()

    def basic(self) -> HealthReport:
        counts = self._counts()
        draining = self.draining or not self._accepting()
        room = (
            counts.running < self.config.max_concurrent_jobs
            or counts.queued < self.config.max_queued_jobs
        )
        status: Literal["ok", "degraded", "draining"] = "ok"
        if draining:
            status = "draining"
        elif self.errors.count(within_s=DEGRADED_WINDOW_S) > 0:
            status = "degraded"
        return HealthReport(
            status=status,
            host_id=self.config.host_id,
            version=self.version,
            uptime_s=round(self._clock() - self._started, 3),
            jobs_running=counts.running,
            jobs_queued=counts.queued,
            max_concurrent_jobs=self.config.max_concurrent_jobs,
            accepting_jobs=not draining and room,
        )

    async def detailed(self) -> HealthReport:
        devices = await asyncio.to_thread(self.probe.devices)
        report = self.basic()
        memory = psutil.virtual_memory()
        return msgspec.structs.replace(
            report,
            devices=devices,
            rss_bytes=int(self._process.memory_info().rss),
            system_memory_total_bytes=int(memory.total),
            system_memory_available_bytes=int(memory.available),
            disk_free_bytes=_disk_free(self.config.models_dir),
            recent_errors=self.errors.count(),
            request_latency=self.latency.summaries(),
        )


def _disk_free(path: Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return int(psutil.disk_usage(str(candidate)).free)
    return None
