"""``training.health``: is the host trainer alive, and how loaded is it."""

from __future__ import annotations

from typing import Literal

import msgspec

from bus_contracts.base import Reply, Request


class HealthRequest(Request, frozen=True, kw_only=True, tag="training.health_request"):
    detailed: bool = False


class DeviceInfo(msgspec.Struct, frozen=True, kw_only=True):
    device: str
    """``cpu``, ``cuda:0``, ``mps``."""
    name: str
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    utilization_ratio: float | None = None
    """0–1, from NVML where present."""


class LatencySummary(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    p50_s: float
    p99_s: float


class HealthReport(Reply, frozen=True, kw_only=True, tag="training.health"):
    status: Literal["ok", "degraded", "draining"]
    host_id: str
    version: str
    uptime_s: float
    jobs_running: int
    jobs_queued: int
    max_concurrent_jobs: int
    accepting_jobs: bool
    devices: list[DeviceInfo] = msgspec.field(default_factory=list)
    rss_bytes: int | None = None
    system_memory_total_bytes: int | None = None
    system_memory_available_bytes: int | None = None
    disk_free_bytes: int | None = None
    recent_errors: int | None = None
    request_latency: dict[str, LatencySummary] = msgspec.field(default_factory=dict)
