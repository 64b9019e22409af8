"""One training job, end to end: data → features → labels → split → normalise →
train → evaluate → save.

:func:`run_training` is what a worker process (host or in-container) calls. It
reports every phase to the sink, with percents from ``PHASE_SPANS`` that never
go backwards, and checks ``sink.should_stop()`` between phases and before every
batch. Errors are :class:`training_engine.errors.EngineError` subclasses.

Run it by hand (prints progress and the result)::

    python -m training_engine.run SPX --timeframe 1d --epochs 30 --device cpu
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import psutil
import torch

from bus_contracts.messages.common import Executor, Phase, ResultSummary
from bus_contracts.messages.performance import (
    ArtifactRef,
    EpochMetrics,
    ModelInfo,
    ResourceUsage,
    TestMetrics,
    TrainingMetrics,
    TrainingPerformance,
)
from bus_contracts.messages.start import StartTraining
from training_engine import devices
from training_engine.dataset import build_dataset, split_indices
from training_engine.errors import BadData, TrainingCancelled
from training_engine.loop import LoopConfig, OomHook, evaluate, train
from training_engine.metrics import compute_test_metrics
from training_engine.model import build_model, model_size_bytes, parameter_count
from training_engine.progress import PHASE_SPANS, ProgressSink
from training_engine.storage import ModelMetadata, ModelMetrics, Normalizer, save_model

if sys.platform != "win32":
    import resource

MIN_STD = 1e-8
"""Features whose training-split standard deviation is below this are only centred."""


@dataclass(frozen=True)
class TrainingOutcome:
    task_id: str
    training: TrainingMetrics
    test: TestMetrics
    model: ModelInfo
    resources: ResourceUsage
    artifact: ArtifactRef
    history: list[EpochMetrics]
    model_dir: Path
    duration_s: float
    """The whole job, data loading to saving."""

    def summary(self) -> ResultSummary:
        return ResultSummary(
            test_accuracy=self.test.accuracy,
            test_macro_f1=self.test.macro_f1,
            baseline_accuracy=self.test.baseline_accuracy,
            epochs_run=self.training.epochs_run,
            early_stopped=self.training.early_stopped,
            duration_s=self.duration_s,
            model_version=self.artifact.model_version,
            model_path=self.artifact.model_path,
            artifact_name=self.artifact.object_name,
        )

    def performance(self, *, executor: Executor, host_id: str) -> TrainingPerformance:
        return TrainingPerformance(
            task_id=self.task_id,
            executor=executor,
            host_id=host_id,
            training=self.training,
            test=self.test,
            model=self.model,
            resources=self.resources,
            artifact=self.artifact,
            history=self.history,
        )


def fit_normalizer(features: npt.NDArray[np.float32]) -> Normalizer:
    """Mean and standard deviation per column (float64 sums), std floored to 1."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64)
    std = np.where(std < MIN_STD, 1.0, std)
    return Normalizer(mean=mean.tolist(), std=std.tolist())


def peak_rss_bytes() -> int:
    """This process' peak resident memory (ru_maxrss; current RSS where unavailable)."""
    if sys.platform == "win32":  # pragma: no cover
        return int(psutil.Process().memory_info().rss)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def library_versions() -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "msgspec": msgspec.__version__,
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found["engine"] = importlib.metadata.version("gpu-training-host")
    return found


def _phase(sink: ProgressSink, phase: Phase, message: str) -> None:
    if sink.should_stop():
        raise TrainingCancelled(f"training was cancelled before {phase}")
    sink.phase(phase, PHASE_SPANS[phase][0], message)


def run_training(
    request: StartTraining,
    *,
    task_id: str,
    data_dir: Path | str,
    models_dir: Path | str,
    sink: ProgressSink,
    device: str | None = None,
    memory_fraction: float | None = None,
    oom_hook: OomHook | None = None,
) -> TrainingOutcome:
    """Train the request's strategy and save the model; see the module doc.

    ``device`` overrides ``request.device`` (the host's configuration may pin
    one); ``memory_fraction`` caps this process' share of GPU memory.
    """
    started = time.perf_counter()
    strategy = request.strategy
    spec = strategy.training
    target = devices.resolve_device(device or request.device)
    precision = devices.choose_precision(target, request.mixed_precision)

    dataset = build_dataset(request, data_dir, sink)
    train_idx, val_idx, test_idx = split_indices(dataset, spec.split)
    for name, idx in (("training", train_idx), ("validation", val_idx), ("test", test_idx)):
        if len(idx) == 0:  # pragma: no cover - build_dataset asks for enough rows
            raise BadData(dataset.parts[0].path, f"the {name} split is empty")
    labels = list(dataset.label_names)
    normalizer = fit_normalizer(dataset.features[train_idx])
    mean = np.asarray(normalizer.mean, dtype=np.float32)
    std = np.asarray(normalizer.std, dtype=np.float32)

    label = devices.device_label(target)
    name = devices.device_name(target)
    note = f"; {precision.note}" if precision.note else ""
    _phase(
        sink,
        "training",
        f"{label} ({name}), mixed precision {precision.mode}{note}; {len(train_idx)} training, "
        f"{len(val_idx)} validation, {len(test_idx)} test rows",
    )
    if memory_fraction is not None:
        devices.apply_memory_cap(target, memory_fraction)
    devices.reset_peak_memory(target)

    def on_device(idx: npt.NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor]:
        x = (dataset.features[idx] - mean) / std
        y = dataset.labels[idx]
        return torch.from_numpy(x).to(target), torch.from_numpy(y).to(target)

    x_train, y_train = on_device(train_idx)
    x_val, y_val = on_device(val_idx)
    x_test, y_test = on_device(test_idx)
    torch.manual_seed(spec.seed)
    model = build_model(strategy.model, len(dataset.feature_names), len(labels)).to(target)
    result = train(
        model,
        x_train,
        y_train,
        x_val,
        y_val,
        config=LoopConfig.from_spec(spec),
        sink=sink,
        classes=len(labels),
        precision=precision,
        oom_hook=oom_hook,
    )

    _phase(sink, "evaluating", f"{len(test_idx)} test rows")
    scored = evaluate(
        model, x_test, y_test, class_weights=result.class_weights, precision=precision
    )
    test = compute_test_metrics(
        dataset.labels[test_idx],
        scored.predictions.cpu().numpy(),
        labels,
        loss=scored.loss,
        y_train=dataset.labels[train_idx],
    )
    model_info = ModelInfo(
        architecture=model.describe(),
        parameters=parameter_count(model),
        size_bytes=model_size_bytes(model),
        feature_names=list(dataset.feature_names),
        input_features=len(dataset.feature_names),
        classes=labels,
    )

    _phase(sink, "saving", f"{strategy.name} in {models_dir}")
    saved = save_model(
        models_dir,
        metadata=ModelMetadata(
            strategy=strategy,
            symbols=list(dataset.symbols),
            timeframe=dataset.timeframe,
            start_date=request.start_date.isoformat() if request.start_date else None,
            end_date=request.end_date.isoformat() if request.end_date else None,
            feature_names=list(dataset.feature_names),
            labels=labels,
            normalizer=normalizer,
            model=model_info,
            versions=library_versions(),
            device=label,
            mixed_precision=precision.mode,
            task_id=task_id,
            data_fingerprint=dataset.fingerprint,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
        ),
        state_dict=model.state_dict(),
        metrics=ModelMetrics(training=result.metrics, test=test, history=result.history),
    )
    resources = ResourceUsage(
        device=label,
        device_name=name,
        mixed_precision=precision.mode,
        peak_gpu_memory_bytes=devices.peak_memory_bytes(target),
        peak_rss_bytes=peak_rss_bytes(),
    )
    return TrainingOutcome(
        task_id=task_id,
        training=result.metrics,
        test=test,
        model=model_info,
        resources=resources,
        artifact=ArtifactRef(
            model_version=saved.version,
            model_path=str(saved.path),
            checksum_sha256=saved.checksum_sha256,
        ),
        history=result.history,
        model_dir=saved.path,
        duration_s=time.perf_counter() - started,
    )


class PrintSink:
    """Progress on stdout, at most one batch line a second (for the command line)."""

    def __init__(self) -> None:
        self._last = -math.inf

    def phase(self, phase: Phase, percent: float, message: str = "") -> None:
        print(f"[{percent:5.1f}%] {phase}: {message}", flush=True)

    def batch(self, *, epoch: int, epochs: int, batch: int, batches: int, loss: float,
              samples_per_s: float, percent: float) -> None:  # fmt: skip
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            print(f"[{percent:5.1f}%]   epoch {epoch}/{epochs} batch {batch}/{batches} "
                  f"loss {loss:.4f} {samples_per_s:,.0f} samples/s", flush=True)  # fmt: skip

    def epoch(self, *, metrics: EpochMetrics, epochs: int, best: bool, percent: float) -> None:
        m = metrics
        print(f"[{percent:5.1f}%]   epoch {m.epoch}/{epochs} train {m.train_loss:.4f}/"
              f"{m.train_accuracy:.3f} val {m.val_loss:.4f}/{m.val_accuracy:.3f}"
              f"{' *' if best else ''}", flush=True)  # fmt: skip

    def batch_size_reduced(self, *, old: int, new: int, reason: str, percent: float) -> None:
        print(f"[{percent:5.1f}%] batch size {old} -> {new}: {reason}", flush=True)

    def should_stop(self) -> bool:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the default strategy once and print it.")
    parser.add_argument("symbols", nargs="+")
    parser.add_argument("--timeframe", default="1d")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--models-dir", default="state/models")
    args = parser.parse_args(argv)
    request = StartTraining(symbols=args.symbols, timeframe=args.timeframe, device=args.device)
    if args.epochs is not None:
        training = msgspec.structs.replace(request.strategy.training, epochs=args.epochs)
        strategy = msgspec.structs.replace(request.strategy, training=training)
        request = msgspec.structs.replace(request, strategy=strategy)
    outcome = run_training(
        request, task_id="cli", data_dir=args.data_dir, models_dir=args.models_dir, sink=PrintSink()
    )
    t, m = outcome.training, outcome.test
    print(f"model      {outcome.model_dir} ({outcome.model.architecture}, "
          f"{outcome.model.parameters} parameters)")  # fmt: skip
    print(f"epochs     {t.epochs_run} (best {t.best_epoch}, early stop {t.early_stopped}), "
          f"batch {t.batch_size}, {t.train_samples}/{t.val_samples}/{m.samples} rows")  # fmt: skip
    print(f"training   {t.duration_s:.2f} s, {t.samples_per_s:,.0f} samples/s on "
          f"{outcome.resources.device}")  # fmt: skip
    print(f"test       accuracy {m.accuracy:.4f}, macro-F1 {m.macro_f1:.4f}, "
          f"baselines: train majority {m.baseline_accuracy:.4f}, "
          f"test majority {m.test_majority_accuracy:.4f}")  # fmt: skip
    print(f"job        {outcome.duration_s:.2f} s, peak RSS "
          f"{outcome.resources.peak_rss_bytes / 2**20:.0f} MiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
