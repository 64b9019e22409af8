from __future__ import annotations

import pytest
import torch

from training_engine import devices
from training_engine.devices import Precision, PrecisionMode, choose_precision, resolve_device
from training_engine.errors import DeviceUnavailable

CPU = torch.device("cpu")
HAS_CUDA = torch.cuda.is_available()
HAS_MPS = devices._mps_available()


def test_auto_picks_the_best_available_device() -> None:
    assert devices.device_label(resolve_device("auto")) == devices.available_devices()[0]
    assert devices.available_devices()[-1] == "cpu"


def test_cpu_is_always_available() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA device is present")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_is_refused_naming_what_is_available(name: str) -> None:
    with pytest.raises(DeviceUnavailable, match=r"no CUDA GPU.*available: .*cpu") as info:
        resolve_device(name)
    assert info.value.code == 400
    assert info.value.field == "device"


@pytest.mark.skipif(HAS_MPS, reason="an MPS device is present")
def test_missing_mps_is_refused() -> None:
    with pytest.raises(DeviceUnavailable, match=r"'mps' is not available.*cpu"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu"])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(DeviceUnavailable, match="device"):
        resolve_device(name)


def test_precision_on_cpu_is_off_and_explains_a_fallback() -> None:
    assert choose_precision(CPU, "auto") == Precision("off")
    assert choose_precision(CPU, "off") == Precision("off")
    for asked in ("bf16", "fp16"):
        chosen = choose_precision(CPU, asked)
        assert chosen.mode == "off"
        assert asked in chosen.note
        assert "float32" in chosen.note
    with pytest.raises(ValueError, match="mixed_precision"):
        choose_precision(CPU, "fp8")


def test_precision_dtypes() -> None:
    assert Precision("off").autocast_dtype is None
    assert Precision("bf16").autocast_dtype is torch.bfloat16
    assert not Precision("bf16").use_scaler
    assert Precision("fp16").autocast_dtype is torch.float16
    assert Precision("fp16").use_scaler


def test_memory_cap_is_a_no_op_on_cpu_and_checks_the_fraction() -> None:
    assert devices.apply_memory_cap(CPU, 0.5) is False
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            devices.apply_memory_cap(CPU, bad)


def test_cpu_memory_summary_and_device_list() -> None:
    info = devices.memory_summary(CPU)
    assert info.device == "cpu"
    assert info.name
    assert info.memory_total_bytes is not None and info.memory_total_bytes > 0
    assert info.memory_used_bytes is not None
    assert 0 <= info.memory_used_bytes <= info.memory_total_bytes
    assert info.utilization_ratio is None
    listed = devices.list_devices()
    assert [d.device for d in listed] == devices.available_devices()
    assert devices.peak_memory_bytes(CPU) is None
    devices.reset_peak_memory(CPU)
    devices.synchronize(CPU)
    devices.empty_cache(CPU)


def test_out_of_memory_errors_are_recognised() -> None:
    assert devices.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried"))
    assert devices.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated"))
    assert devices.is_out_of_memory(
        RuntimeError("DefaultCPUAllocator: can't allocate: out of memory")
    )
    assert not devices.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not devices.is_out_of_memory(ValueError("out of memory"))


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_CUDA or HAS_MPS), reason="needs a CUDA or MPS device; none is present")
def test_gpu_paths() -> None:  # pragma: gpu
    from training_engine.loop import LoopConfig, train
    from training_engine.model import MLP

    from . import RecordingSink, synthetic

    device = resolve_device("auto")
    assert device.type in ("cuda", "mps")
    info = devices.memory_summary(device)
    assert info.memory_total_bytes and info.memory_total_bytes > 0
    assert info.name
    assert devices.apply_memory_cap(device, 0.9)
    precision = choose_precision(device, "auto")
    if device.type == "cuda":
        assert precision.mode == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
        assert choose_precision(device, "fp16").use_scaler
    x, y = synthetic(4000)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    modes: tuple[PrecisionMode, ...] = (
        ("off", "bf16", "fp16") if device.type == "cuda" else ("off",)
    )
    for mode in modes:
        devices.reset_peak_memory(device)
        torch.manual_seed(0)
        model = MLP(x.shape[1], 3, [64, 32], "relu", 0.1).to(device)
        result = train(
            model,
            xt[:3000],
            yt[:3000],
            xt[3000:],
            yt[3000:],
            config=LoopConfig(epochs=5, batch_size="auto"),
            sink=RecordingSink(),
            classes=3,
            precision=Precision(mode),
        )
        assert result.metrics.final_val_accuracy > 0.5, mode
        assert result.batch_size == 2048  # largest power of two <= 3000 rows
        peak = devices.peak_memory_bytes(device)
        assert peak is not None and peak > 0
