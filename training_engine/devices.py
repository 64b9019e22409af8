"""Device choice, memory caps, mixed precision and memory reports.

``auto`` picks CUDA, then Apple MPS, then the CPU. Mixed precision follows the
device: bf16 autocast on CUDA where the GPU supports it, else fp16 autocast
with a gradient scaler; nothing on the CPU.

Precision on the CPU: ``auto`` means ``off``. An explicit ``bf16`` or ``fp16``
on the CPU falls back to ``off`` (float32) and says so in
:attr:`Precision.note`, instead of failing: a request written for a GPU host
must still train when it falls back to the in-container CPU, and CPU autocast
makes these small MLPs slower, not faster. The precision actually used is what
the result reports (``ResourceUsage.mixed_precision``).

Memory caps: on CUDA :func:`apply_memory_cap` calls
``torch.cuda.set_per_process_memory_fraction``; on MPS it calls
``torch.mps.set_per_process_memory_fraction``, whose limit is relative to the
MPS high watermark. That watermark itself can only be set before the process
first touches MPS, through the environment variable
``PYTORCH_MPS_HIGH_WATERMARK_RATIO`` (default 1.7 of the recommended working
set; ``0.0`` disables the limit). The CPU has no cap here: a worker process is
bounded by the operating system (cgroups, ulimit) instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
from dataclasses import dataclass
from typing import Literal

import psutil
import torch

from bus_contracts.messages.health import DeviceInfo
from training_engine.errors import DeviceUnavailable

log = logging.getLogger(__name__)

PrecisionMode = Literal["bf16", "fp16", "off"]
RequestedPrecision = Literal["auto", "bf16", "fp16", "off"]


@dataclass(frozen=True)
class Precision:
    """The mixed-precision policy of one training run."""

    mode: PrecisionMode
    note: str = ""
    """Why the mode differs from what was asked, when it does."""

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        if self.mode == "bf16":
            return torch.bfloat16
        if self.mode == "fp16":
            return torch.float16
        return None

    @property
    def use_scaler(self) -> bool:
        """fp16 needs a gradient scaler (its range is too small for raw gradients)."""
        return self.mode == "fp16"


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the devices this process can train on, best first."""
    names: list[str] = []
    if _cuda_available():  # pragma: gpu
        names.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if _mps_available():  # pragma: gpu
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(requested: str = "auto") -> torch.device:
    """The torch device for ``auto | cpu | cuda | cuda:N | mps``.

    Raises :class:`DeviceUnavailable` naming what is available when the
    requested device is not present.
    """
    req = requested.strip().lower()
    if req == "auto":
        if _cuda_available():  # pragma: gpu
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():  # pragma: gpu
            return torch.device("mps")
        return torch.device("cpu")
    if req == "cpu":
        return torch.device("cpu")
    available = ", ".join(available_devices())
    if req == "mps":
        if not _mps_available():
            raise DeviceUnavailable(
                f"device 'mps' is not available here (available: {available})", field="device"
            )
        return torch.device("mps")  # pragma: gpu
    if req == "cuda" or req.startswith("cuda:"):
        index_text = req.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise DeviceUnavailable(
                f"device {requested!r} is not a valid CUDA device name", field="device"
            )
        index = int(index_text)
        if not _cuda_available():
            raise DeviceUnavailable(
                f"device {requested!r} is not available: no CUDA GPU is visible to this "
                f"process (available: {available})",
                field="device",
            )
        count = torch.cuda.device_count()  # pragma: gpu
        if index >= count:  # pragma: gpu
            raise DeviceUnavailable(
                f"device {requested!r} is not available: {count} CUDA device(s) visible "
                f"(available: {available})",
                field="device",
            )
        return torch.device("cuda", index)  # pragma: gpu
    raise DeviceUnavailable(
        f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps "
        f"(available: {available})",
        field="device",
    )


def device_label(device: torch.device) -> str:
    """``cpu``, ``cuda:0`` or ``mps``: the name used in results and health."""
    if device.type == "cuda":  # pragma: gpu
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}"
    return device.type


def device_name(device: torch.device) -> str:
    """A human name: the GPU model, ``Apple MPS``, or the CPU model."""
    if device.type == "cuda":  # pragma: gpu
        return torch.cuda.get_device_name(device)
    if device.type == "mps":  # pragma: gpu
        return f"Apple MPS ({platform.machine()})"
    return _cpu_name()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "cpu"


def apply_memory_cap(device: torch.device, fraction: float) -> bool:
    """Cap this process' share of the device's memory; True when a cap was set.

    ``fraction`` is in (0, 1]. The CPU has no cap (returns False).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"memory fraction must be in (0, 1], got {fraction}")
    if device.type == "cuda":  # pragma: gpu
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        return True
    if device.type == "mps":  # pragma: gpu
        torch.mps.set_per_process_memory_fraction(fraction)
        return True
    return False


def choose_precision(device: torch.device, requested: RequestedPrecision | str) -> Precision:
    """The mixed-precision policy for ``device`` (see the module doc)."""
    if requested not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"mixed_precision must be auto, bf16, fp16 or off, got {requested!r}")
    if requested == "off":
        return Precision("off")
    if device.type == "cuda":  # pragma: gpu
        bf16_ok = torch.cuda.is_bf16_supported()
        if requested in ("auto", "bf16") and bf16_ok:
            return Precision("bf16")
        if requested == "bf16":
            return Precision("fp16", note=f"{device_name(device)} has no bf16: using fp16")
        return Precision("fp16")
    if device.type == "mps":  # pragma: gpu
        if requested == "auto":
            return Precision("off", note="auto mixed precision is off on MPS")
        return Precision("bf16" if requested == "bf16" else "fp16")
    if requested == "auto":
        return Precision("off")
    return Precision(
        "off", note=f"{requested} was asked but the CPU trains in float32 (mixed precision off)"
    )


def _nvml_utilization(index: int) -> float | None:  # pragma: gpu
    """GPU utilisation 0–1 from NVML, when ``pynvml`` happens to be installed."""
    try:
        pynvml = importlib.import_module("pynvml")  # optional: never a dependency
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            # NVML counts physical GPUs; honour CUDA_VISIBLE_DEVICES when it is a list.
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
            ids = [v for v in visible.split(",") if v.strip().isdigit()]
            physical = int(ids[index]) if index < len(ids) else index
            handle = pynvml.nvmlDeviceGetHandleByIndex(physical)
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            return float(rates.gpu) / 100.0
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        log.debug("nvml_query_failed", exc_info=True)
        return None


def memory_summary(device: torch.device) -> DeviceInfo:
    """Name, memory total/used/reserved and (CUDA with NVML) utilisation."""
    label = device_label(device)
    if device.type == "cuda":  # pragma: gpu
        index = int(label.split(":")[1])
        free, total = torch.cuda.mem_get_info(index)
        return DeviceInfo(
            device=label,
            name=device_name(device),
            memory_total_bytes=int(total),
            memory_used_bytes=int(total - free),
            memory_reserved_bytes=int(torch.cuda.memory_reserved(index)),
            utilization_ratio=_nvml_utilization(index),
        )
    if device.type == "mps":  # pragma: gpu
        return DeviceInfo(
            device=label,
            name=device_name(device),
            memory_total_bytes=int(torch.mps.recommended_max_memory()),
            memory_used_bytes=int(torch.mps.current_allocated_memory()),
            memory_reserved_bytes=int(torch.mps.driver_allocated_memory()),
        )
    vm = psutil.virtual_memory()
    return DeviceInfo(
        device=label,
        name=device_name(device),
        memory_total_bytes=int(vm.total),
        memory_used_bytes=int(vm.total - vm.available),
    )


def list_devices() -> list[DeviceInfo]:
    """A :class:`DeviceInfo` for every device this process can train on."""
    return [memory_summary(torch.device(name)) for name in available_devices()]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (for honest timings); nothing on the CPU."""
    if device.type == "cuda":  # pragma: gpu
        torch.cuda.synchronize(device)
    elif device.type == "mps":  # pragma: gpu
        torch.mps.synchronize()


def empty_cache(device: torch.device) -> None:
    """Give cached, unused GPU memory back (after an out-of-memory error)."""
    if device.type == "cuda":  # pragma: gpu
        torch.cuda.empty_cache()
    elif device.type == "mps":  # pragma: gpu
        torch.mps.empty_cache()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":  # pragma: gpu
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak memory allocated by tensors on a CUDA device since the last reset.

    MPS has no peak counter: its current driver allocation is reported
    instead. None on the CPU (see peak RSS).
    """
    if device.type == "cuda":  # pragma: gpu
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "mps":  # pragma: gpu
        return int(torch.mps.driver_allocated_memory())
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures that a smaller batch may avoid."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
