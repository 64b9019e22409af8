"""The training loop.

The whole dataset sits on the training device as tensors; an epoch is a
seeded permutation of row indices cut into slices (no DataLoader: it halves
throughput on small MLPs). Adam with weight decay, cross-entropy with optional
inverse-frequency class weights, gradient clipping by norm, early stopping on
validation loss, and the best-by-validation weights restored at the end.

Cheap on the hot path: losses and accuracy are accumulated on the device and
read back (a GPU sync) at most every ``loss_read_interval_s`` and at the end of
each epoch, so the per-batch progress call costs no sync. ``sink.should_stop()``
is asked before every batch.

Out of memory: the batch is halved, cached memory is released, the step is
redone from the same position, and ``sink.batch_size_reduced`` is told; when
even one row does not fit the job fails with :class:`TrainingFailed`. Tests
inject out-of-memory errors through ``oom_hook``, called with the batch size
before every step.

Determinism: the permutation comes from a CPU ``torch.Generator`` seeded with
the strategy's seed (the same order on every device), dropout from
``torch.manual_seed``; on the CPU ``torch.use_deterministic_algorithms`` is on
for the duration of the loop, so two CPU runs with one seed give identical
weights. (On CUDA it stays as the caller set it: deterministic mode needs
``CUBLAS_WORKSPACE_CONFIG`` and slows some kernels.)

Threads: a small model trains on one CPU thread (see :func:`cpu_threads_for`),
restored afterwards.

``batch_size="auto"``: on a GPU, the largest power of two whose forward and
backward pass fits (trial steps, largest first), capped by the training rows
and ``bounds.MAX_BATCH_SIZE``. On the CPU there is no memory cliff to find and
bigger batches only mean fewer updates per epoch, so ``auto`` is
:data:`CPU_AUTO_BATCH_SIZE` (capped by the training rows) without a search.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from bus_contracts import bounds
from bus_contracts.messages.performance import EpochMetrics, TrainingMetrics
from bus_contracts.strategy import TrainingSpec
from training_engine.devices import Precision, empty_cache, is_out_of_memory
from training_engine.errors import TrainingCancelled, TrainingFailed
from training_engine.progress import PHASE_SPANS, ProgressSink

CPU_AUTO_BATCH_SIZE = 512
SMALL_STEP_MACS = 16_000_000
"""Below this many multiply-adds per step (parameters x batch), the CPU trains on one thread."""
EVAL_CHUNK_ROWS = 65_536
FULL_PRECISION = Precision("off")
OomHook = Callable[[int], None]
"""Called with the batch size before every training step; raise to simulate OOM."""


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 50
    batch_size: int | Literal["auto"] = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    class_weighting: Literal["inverse_frequency", "none"] = "inverse_frequency"
    gradient_clip_norm: float = 1.0
    early_stopping: bool = True
    patience: int = 10
    min_delta: float = 1e-4
    seed: int = 42
    cpu_threads: int = 0
    """Threads for CPU training; 0 picks (see :func:`cpu_threads_for`)."""

    @classmethod
    def from_spec(cls, spec: TrainingSpec) -> LoopConfig:
        return cls(
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            weight_decay=spec.weight_decay,
            class_weighting=spec.class_weighting,
            gradient_clip_norm=spec.gradient_clip_norm,
            early_stopping=spec.early_stopping.enabled,
            patience=spec.early_stopping.patience,
            min_delta=spec.early_stopping.min_delta,
            seed=spec.seed,
        )


@dataclass
class TrainResult:
    history: list[EpochMetrics]
    metrics: TrainingMetrics
    class_weights: torch.Tensor | None
    """The weights the loss used (on the device), for scoring the test split alike."""
    batch_size: int
    """The batch size at the end (smaller than asked after out-of-memory errors)."""
    batch_size_reductions: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    predictions: torch.Tensor
    """Predicted class per row (int64, on the device)."""


def inverse_frequency_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``n / (classes * count_c)`` per class; a class absent from ``labels`` gets 1."""
    counts = torch.bincount(labels, minlength=classes).to(torch.float32)
    weights = labels.numel() / (classes * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.ones_like(weights))


def _autocast(
    device: torch.device, precision: Precision
) -> contextlib.AbstractContextManager[None]:
    dtype = precision.autocast_dtype
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)  # pragma: gpu


def cpu_threads_for(model: nn.Module, batch_size: int, requested: int = 0) -> int:
    """Intra-op threads for training ``model`` on the CPU.

    A small MLP step is a few microseconds of arithmetic: splitting it over
    threads gains nothing, and on a busy machine (more runnable threads than
    cores) torch's thread pool stalls at every operation's barrier, which made
    the default SPX job 10-35 times slower in measurements here. So steps under
    :data:`SMALL_STEP_MACS` use one thread; bigger ones keep torch's setting.
    """
    if requested > 0:
        return requested
    macs = sum(p.numel() for p in model.parameters()) * batch_size
    return 1 if macs < SMALL_STEP_MACS else torch.get_num_threads()


@contextlib.contextmanager
def _cpu_threads(device: torch.device, threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if device.type != "cpu" or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    if device.type != "cpu":  # pragma: gpu
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    class_weights: torch.Tensor | None = None,
    precision: Precision = FULL_PRECISION,
    chunk_rows: int = EVAL_CHUNK_ROWS,
) -> Evaluation:
    """Loss (weighted like training), accuracy and predictions, in eval mode."""
    was_training = model.training
    model.eval()
    n = x.shape[0]
    loss_sum = torch.zeros((), device=x.device)
    weight_sum = torch.zeros((), device=x.device)
    preds: list[torch.Tensor] = []
    try:
        with torch.inference_mode(), _autocast(x.device, precision):
            for start in range(0, n, chunk_rows):
                xb, yb = x[start : start + chunk_rows], y[start : start + chunk_rows]
                logits = model(xb).float()
                loss_sum += F.cross_entropy(logits, yb, weight=class_weights, reduction="sum")
                weight_sum += class_weights[yb].sum() if class_weights is not None else yb.numel()
                preds.append(logits.argmax(dim=1))
    finally:
        model.train(was_training)
    predictions = torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64, device=x.device)
    correct = (predictions == y).sum().item() if n else 0
    total = weight_sum.item()
    return Evaluation(
        loss=loss_sum.item() / total if total > 0 else float("nan"),
        accuracy=correct / n if n else 0.0,
        predictions=predictions,
    )


def _make_optimizer(model: nn.Module, config: LoopConfig) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this build has it (CPU and CUDA in torch >= 2.4)."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(
            params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
        )
    except (RuntimeError, TypeError):  # pragma: no cover - older torch or other devices
        return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)


StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    clip: float,
    device: torch.device,
    precision: Precision,
) -> StepFn:
    """One optimisation step on a batch; returns (loss, logits), both still on the device."""
    params = [p for p in model.parameters() if p.requires_grad]
    clip_ = nn.utils.clip_grad_norm_

    if precision.autocast_dtype is None:

        def step(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = criterion(logits, yb)
            loss.backward()
            if clip > 0:
                clip_(params, clip)
            optimizer.step()
            return loss, logits

        return step

    scaler = torch.amp.GradScaler(device.type) if precision.use_scaler else None  # pragma: gpu

    def amp_step(
        xb: torch.Tensor, yb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: gpu
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            logits = model(xb)
            loss = criterion(logits.float(), yb)
        if scaler is None:
            loss.backward()
            if clip > 0:
                clip_(params, clip)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            if clip > 0:
                scaler.unscale_(optimizer)
                clip_(params, clip)
            scaler.step(optimizer)
            scaler.update()
        return loss, logits

    return amp_step  # pragma: gpu


def _largest_power_of_two(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def find_batch_size(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    criterion: nn.Module,
    precision: Precision = FULL_PRECISION,
    search: bool | None = None,
    oom_hook: OomHook | None = None,
) -> int:
    """The batch size for ``"auto"`` (see the module doc).

    ``search`` defaults to True on a GPU and False on the CPU; tests force it.
    """
    n = x.shape[0]
    device = x.device
    if search is None:
        search = device.type != "cpu"
    if not search:
        return max(1, min(CPU_AUTO_BATCH_SIZE, n))
    size = _largest_power_of_two(min(n, bounds.MAX_BATCH_SIZE))
    while size >= 1:
        failed = False
        try:
            if oom_hook is not None:
                oom_hook(size)
            with _autocast(device, precision):
                loss = criterion(model(x[:size]).float(), y[:size])
            loss.backward()
            del loss
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            failed = True
        model.zero_grad(set_to_none=True)
        if not failed:
            return size
        empty_cache(device)
        size //= 2
    raise TrainingFailed("out of memory: not even a batch of one row fits on the device")


def train(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    config: LoopConfig,
    sink: ProgressSink,
    classes: int,
    precision: Precision = FULL_PRECISION,
    percent_span: tuple[float, float] = PHASE_SPANS["training"],
    oom_hook: OomHook | None = None,
    loss_read_interval_s: float = 0.25,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainResult:
    """Train ``model`` in place (already on the tensors' device); see the module doc."""
    device = x_train.device
    n = int(x_train.shape[0])
    if n == 0 or x_val.shape[0] == 0:
        raise TrainingFailed(
            f"nothing to train on: {n} training and {x_val.shape[0]} validation rows"
        )
    weights = (
        inverse_frequency_weights(y_train, classes)
        if config.class_weighting == "inverse_frequency"
        else None
    )
    criterion = nn.CrossEntropyLoss(weight=weights)
    model.train()
    if config.batch_size == "auto":
        batch_size = find_batch_size(
            model, x_train, y_train, criterion=criterion, precision=precision, oom_hook=oom_hook
        )
    else:
        batch_size = max(1, min(int(config.batch_size), n))
    optimizer = _make_optimizer(model, config)
    step = _make_step(model, optimizer, criterion, config.gradient_clip_norm, device, precision)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    lo, hi = percent_span
    epochs = config.epochs
    span_per_epoch = (hi - lo) / epochs

    history: list[EpochMetrics] = []
    reductions: list[tuple[int, int]] = []
    best_loss = math.inf
    best_epoch = 0
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    early_stopped = False
    loss_acc = torch.zeros((), device=device)
    correct_acc = torch.zeros((), dtype=torch.int64, device=device)
    started = clock()

    threads = cpu_threads_for(model, batch_size, config.cpu_threads)
    with _deterministic(device), _cpu_threads(device, threads):
        for epoch in range(1, epochs + 1):
            model.train()
            t_epoch = clock()
            perm = torch.randperm(n, generator=generator).to(device)
            loss_acc.zero_()
            correct_acc.zero_()
            shown_loss = math.nan
            last_read = -math.inf
            start = 0
            batch_no = 0
            while start < n:
                if sink.should_stop():
                    raise TrainingCancelled(f"training was cancelled in epoch {epoch}")
                end = min(start + batch_size, n)
                idx = perm[start:end]
                yb = y_train[idx]
                oom = False
                try:
                    if oom_hook is not None:
                        oom_hook(end - start)
                    loss, logits = step(x_train[idx], yb)
                except RuntimeError as exc:
                    if not is_out_of_memory(exc):
                        raise
                    oom = True
                if oom:
                    old = batch_size
                    batch_size = _reduce_batch(
                        model, device, old, sink, lo + span_per_epoch * (epoch - 1 + start / n)
                    )
                    reductions.append((old, batch_size))
                    continue
                loss_acc.add_(loss.detach(), alpha=end - start)
                correct_acc.add_((logits.argmax(dim=1) == yb).sum())
                start = end
                batch_no += 1
                now = clock()
                if start >= n or now - last_read >= loss_read_interval_s:
                    shown_loss = loss_acc.item() / start
                    last_read = now
                sink.batch(
                    epoch=epoch,
                    epochs=epochs,
                    batch=batch_no,
                    batches=batch_no + -(-(n - start) // batch_size),
                    loss=shown_loss,
                    samples_per_s=start / max(now - t_epoch, 1e-9),
                    percent=lo + span_per_epoch * (epoch - 1 + start / n),
                )
            train_loss = loss_acc.item() / n
            train_acc = correct_acc.item() / n
            train_time = clock() - t_epoch
            if not math.isfinite(train_loss):
                raise TrainingFailed(
                    f"the training loss became {train_loss} in epoch {epoch}: lower the "
                    "learning rate, or turn mixed precision off"
                )
            val = evaluate(model, x_val, y_val, class_weights=weights, precision=precision)
            improved = val.loss < best_loss - config.min_delta
            if improved:
                best_loss, best_epoch, bad_epochs = val.loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=train_loss,
                train_accuracy=train_acc,
                val_loss=val.loss,
                val_accuracy=val.accuracy,
                learning_rate=float(optimizer.param_groups[0]["lr"]),
                duration_s=clock() - t_epoch,
                samples_per_s=n / max(train_time, 1e-9),
                batch_size=batch_size,
            )
            history.append(metrics)
            sink.epoch(
                metrics=metrics,
                epochs=epochs,
                best=improved,
                percent=lo + span_per_epoch * epoch,  # equals the last batch's percent exactly
            )
            if config.early_stopping and bad_epochs >= config.patience and epoch < epochs:
                early_stopped = True
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    duration = clock() - started
    last = history[-1]
    return TrainResult(
        history=history,
        metrics=TrainingMetrics(
            final_train_loss=last.train_loss,
            final_train_accuracy=last.train_accuracy,
            final_val_loss=last.val_loss,
            final_val_accuracy=last.val_accuracy,
            best_val_loss=best_loss if best_state is not None else last.val_loss,
            best_epoch=best_epoch or last.epoch,
            epochs_run=len(history),
            early_stopped=early_stopped,
            duration_s=duration,
            samples_per_s=n * len(history) / max(duration, 1e-9),
            train_samples=n,
            val_samples=int(x_val.shape[0]),
            batch_size=batch_size,
        ),
        class_weights=weights,
        batch_size=batch_size,
        batch_size_reductions=reductions,
    )


def _reduce_batch(
    model: nn.Module, device: torch.device, old: int, sink: ProgressSink, percent: float
) -> int:
    """Halve the batch after an out-of-memory error, or fail when it cannot shrink."""
    model.zero_grad(set_to_none=True)
    empty_cache(device)
    new = old // 2
    if new < 1:
        raise TrainingFailed(
            "out of memory with a batch of one row: the model does not fit on the device"
        )
    sink.batch_size_reduced(
        old=old,
        new=new,
        reason=f"out of memory on {device.type} with batch size {old}",
        percent=percent,
    )
    return new
