"""Training throughput on the CPU and on the GPU, for three model sizes.

Each figure is the engine's own loop (``training_engine.loop.train``) on
synthetic data with 30 features and 3 classes, batch 1024, mixed precision
``auto`` (bf16/fp16 on CUDA, off elsewhere): the samples/s of the best epoch
after the first (which pays for warm-up). The row count per device and model
is sized from a short probe so that an epoch takes about ``--seconds``. On a
machine without CUDA or MPS it prints the CPU figures and says the GPU is
absent.

    python -m bench.gpu_speedup [--seconds 1.5] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.engine_vs_bare import NullSink

SIZES: list[list[int]] = [[64, 32], [512, 256], [2048, 1024, 512]]
FEATURES = 30
BATCH = 1024


def _data(rows: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows + rows // 10, FEATURES)).astype(np.float32)
    y = (x[:, :3].argmax(axis=1)).astype(np.int64)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    return xt[:rows], yt[:rows], xt[rows:], yt[rows:]


def throughput(hidden: list[int], device: torch.device, rows: int, epochs: int) -> float:
    from training_engine.devices import choose_precision, synchronize
    from training_engine.loop import LoopConfig, train
    from training_engine.model import MLP

    x, y, xv, yv = _data(rows, device)
    torch.manual_seed(0)
    model = MLP(FEATURES, 3, hidden, "relu", 0.1).to(device)
    config = LoopConfig(epochs=epochs, batch_size=min(BATCH, rows), early_stopping=False)
    result = train(
        model, x, y, xv, yv, config=config, sink=NullSink(), classes=3,
        precision=choose_precision(device, "auto"),
    )  # fmt: skip
    synchronize(device)
    return max(h.samples_per_s for h in result.history[1:] or result.history)


def measure(hidden: list[int], device: torch.device, seconds: float, epochs: int) -> float:
    probe_rows = 4 * BATCH
    started = time.perf_counter()
    probe = throughput(hidden, device, probe_rows, 2)
    if time.perf_counter() - started > 4 * seconds:  # already slow: the probe will do
        return probe
    rows = int(min(max(probe * seconds, probe_rows), 2_000_000))
    return throughput(hidden, device, rows, epochs)


def main() -> None:
    from training_engine.devices import available_devices, device_name
    from training_engine.model import MLP, parameter_count

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="target seconds per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    gpus = [name for name in available_devices() if name != "cpu"]
    gpu = torch.device(gpus[0]) if gpus else None
    print(f"cpu: {device_name(cpu)}, {torch.get_num_threads()} threads")
    if gpu is None:
        print("gpu: absent (no CUDA or MPS device visible): CPU figures only")
    else:  # pragma: gpu
        print(f"gpu: {gpu} {device_name(gpu)}")
    header = f"{'model':<20}{'params':>11}{'cpu samples/s':>16}"
    if gpu is not None:  # pragma: gpu
        header += f"{'gpu samples/s':>16}{'speed-up':>10}"
    print(header)
    for hidden in SIZES:
        params = parameter_count(MLP(FEATURES, 3, hidden))
        cpu_rate = measure(hidden, cpu, args.seconds, args.epochs)
        line = f"{hidden!s:<20}{params:>11,}{cpu_rate:>16,.0f}"
        if gpu is not None:  # pragma: gpu
            gpu_rate = measure(hidden, gpu, args.seconds, args.epochs)
            line += f"{gpu_rate:>16,.0f}{gpu_rate / cpu_rate:>9.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
