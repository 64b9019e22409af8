"""The engine's training loop against a bare hand-written loop, same work.

Same data (the default strategy's SPX features when the data is there,
synthetic data of that shape otherwise), model, batch size, epochs and device;
early stopping off so both run every epoch. Each run starts from the same
seeded weights. The bare loops do what a careful hand-written loop does:
seeded ``randperm`` slices of on-device tensors, forward, weighted
cross-entropy, backward, gradient clipping, Adam, and a validation pass per
epoch; no progress, accuracy, cancellation checks or best-weight copies.
"engine" runs on torch's thread count like the bare loops; "engine/auto" lets
the engine pick (one thread for a model this small, see
``training_engine.loop.cpu_threads_for``).
"bare" uses ``torch.optim.Adam`` with its default kernel; "bare+fused" uses the
fused Adam the engine uses, so ``engine / bare+fused`` is the cost of the engine's
bookkeeping alone. Runs are interleaved (rotating order) and the medians
reported. Target: engine time <= 1.05 x bare on the CPU.

    python -m bench.engine_vs_bare [--epochs 30] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bus_contracts.messages.common import Phase
from bus_contracts.messages.performance import EpochMetrics

ROOT = Path(__file__).resolve().parent.parent
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class NullSink:
    """The cheapest possible progress sink."""

    def phase(self, phase: Phase, percent: float, message: str = "") -> None:
        pass

    def batch(self, **kwargs: float) -> None:
        pass

    def epoch(self, *, metrics: EpochMetrics, epochs: int, best: bool, percent: float) -> None:
        pass

    def batch_size_reduced(self, *, old: int, new: int, reason: str, percent: float) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def load_data(device: torch.device) -> tuple[Data, str]:
    """Normalised train/validation tensors of the default strategy on SPX daily."""
    try:
        from bus_contracts.messages.start import StartTraining
        from training_engine.dataset import build_dataset, split_indices
        from training_engine.run import fit_normalizer

        request = StartTraining(symbols=["SPX"], timeframe="1d")
        ds = build_dataset(request, ROOT / "data")
        tr, va, _ = split_indices(ds, request.strategy.training.split)
        norm = fit_normalizer(ds.features[tr])
        mean = np.asarray(norm.mean, np.float32)
        std = np.asarray(norm.std, np.float32)
        x = (ds.features - mean) / std
        y = ds.labels
        source = "SPX 1d default-strategy features"
    except Exception as exc:  # noqa: BLE001 - fall back to the same shape
        rng = np.random.default_rng(0)
        x = rng.normal(size=(4922, 30)).astype(np.float32)
        y = rng.integers(0, 3, size=4922)
        tr, va = np.arange(3453), np.arange(3453, 4177)
        source = f"synthetic 4922x30 ({type(exc).__name__}: {exc})"
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    lab = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    tr_t, va_t = torch.from_numpy(tr).to(device), torch.from_numpy(va).to(device)
    return (t[tr_t], lab[tr_t], t[va_t], lab[va_t]), source


def make_model(features: int, device: torch.device, seed: int) -> nn.Module:
    from training_engine.model import MLP

    torch.manual_seed(seed)
    return MLP(features, 3, [64, 32], "relu", 0.2).to(device)


def class_weights(y: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(y, minlength=3).float()
    return y.numel() / (3 * counts.clamp(min=1))


def bare_loop(data: Data, epochs: int, batch: int, seed: int, *, fused: bool) -> float:
    x, y, xv, yv = data
    model = make_model(x.shape[1], x.device, seed)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4, fused=fused or None)
    crit = nn.CrossEntropyLoss(weight=class_weights(y))
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(x.device)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x[idx]), y[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        model.eval()
        with torch.no_grad():
            crit(model(xv), yv).item()
    return time.perf_counter() - start


def engine_loop(data: Data, epochs: int, batch: int, seed: int, threads: int) -> float:
    from training_engine.loop import LoopConfig, train

    x, y, xv, yv = data
    model = make_model(x.shape[1], x.device, seed)
    config = LoopConfig(
        epochs=epochs, batch_size=batch, early_stopping=False, seed=seed, cpu_threads=threads
    )
    start = time.perf_counter()
    train(model, x, y, xv, yv, config=config, sink=NullSink(), classes=3)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    data, source = load_data(device)
    n = data[0].shape[0]
    print(f"data: {source}; {n} training / {data[2].shape[0]} validation rows")
    print(f"model mlp[64,32], batch {args.batch_size}, {args.epochs} epochs, {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    runs: dict[str, Callable[[int], float]] = {
        "engine": lambda seed: engine_loop(data, args.epochs, args.batch_size, seed, threads),
        "engine/auto": lambda seed: engine_loop(data, args.epochs, args.batch_size, seed, 0),
        "bare": lambda seed: bare_loop(data, args.epochs, args.batch_size, seed, fused=False),
        "bare+fused": lambda seed: bare_loop(data, args.epochs, args.batch_size, seed, fused=True),
    }
    names = list(runs)
    for name in names:  # warm-up
        runs[name](0)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(args.repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            times[name].append(runs[name](rep))
    samples = n * args.epochs
    print(f"{'loop':<12}{'median s':>10}{'min s':>10}{'samples/s':>12}")
    for name in names:
        med = statistics.median(times[name])
        print(f"{name:<12}{med:>10.3f}{min(times[name]):>10.3f}{samples / med:>12,.0f}")
    engine = statistics.median(times["engine"])
    for base in ("bare+fused", "bare"):
        paired = statistics.median(e / b for e, b in zip(times["engine"], times[base], strict=True))
        print(f"time ratio engine / {base}: {engine / statistics.median(times[base]):.3f} "
              f"(median of paired ratios {paired:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
