from __future__ import annotations

import hashlib
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from training_engine.errors import TrainingCancelled, TrainingFailed
from training_engine.loop import (
    CPU_AUTO_BATCH_SIZE,
    LoopConfig,
    TrainResult,
    evaluate,
    find_batch_size,
    inverse_frequency_weights,
    train,
)
from training_engine.model import MLP

from . import RecordingSink, synthetic

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _data(rows: int = 1500, seed: int = 0) -> Tensors:
    x, y = synthetic(rows, seed=seed)
    cut = int(rows * 0.8)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return xt[:cut], yt[:cut], xt[cut:], yt[cut:]


def _run(
    data: Tensors,
    config: LoopConfig,
    sink: RecordingSink | None = None,
    hidden: list[int] | None = None,
    **kw: object,
) -> tuple[MLP, TrainResult, RecordingSink]:
    sink = sink or RecordingSink()
    torch.manual_seed(config.seed)
    model = MLP(data[0].shape[1], 3, hidden or [32, 16], "relu", 0.1)
    result = train(model, *data, config=config, sink=sink, classes=3, **kw)  # type: ignore[arg-type]
    return model, result, sink


def _weights_sha(model: torch.nn.Module) -> str:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _comparable(result: TrainResult) -> list[tuple[float, ...]]:
    return [
        (h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy, h.batch_size)
        for h in result.history
    ]


def test_two_cpu_runs_with_one_seed_are_identical() -> None:
    data = _data()
    config = LoopConfig(epochs=4, batch_size=64, seed=7)
    m1, r1, _ = _run(data, config)
    m2, r2, _ = _run(data, config)
    assert _comparable(r1) == _comparable(r2)
    assert _weights_sha(m1) == _weights_sha(m2)
    m3, _, _ = _run(data, LoopConfig(epochs=4, batch_size=64, seed=8))
    assert _weights_sha(m3) != _weights_sha(m1)
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


def test_learns_and_reports_every_batch_and_epoch() -> None:
    data = _data()
    _, result, sink = _run(data, LoopConfig(epochs=6, batch_size=100, early_stopping=False))
    m = result.metrics
    assert m.epochs_run == 6
    assert not m.early_stopped
    assert m.final_val_accuracy > 0.6
    assert m.train_samples == 1200
    assert m.val_samples == 300
    assert m.batch_size == 100
    assert len(sink.batches) == 6 * 12
    last = sink.batches[-1]
    assert (last["epoch"], last["batch"], last["batches"]) == (6, 12, 12)
    assert math.isfinite(last["loss"])
    assert last["loss"] == pytest.approx(result.history[-1].train_loss, rel=1e-6)
    assert len(sink.epochs) == 6
    assert sink.percents == sorted(sink.percents)
    assert sink.percents[0] > 10.0
    assert sink.percents[-1] == pytest.approx(95.0)
    assert sink.stop_checks >= 72
    for h in result.history:
        assert h.samples_per_s > 0
        assert h.learning_rate == 1e-3
    best = [e[0].epoch for e in sink.epochs if e[1]]
    assert best[-1] == m.best_epoch


def test_early_stopping_really_stops_and_restores_the_best_weights() -> None:
    # Random labels: nothing generalises, so validation loss soon rises.
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(600, 10)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, size=600))
    data = (x[:400], y[:400], x[400:], y[400:])
    config = LoopConfig(
        epochs=300,
        batch_size=32,
        learning_rate=1e-2,
        weight_decay=0.0,
        patience=3,
        min_delta=0.0,
        class_weighting="none",
    )
    model, result, _ = _run(data, config, hidden=[128, 128])
    m = result.metrics
    assert m.early_stopped
    assert m.epochs_run < 300
    assert m.epochs_run == m.best_epoch + 3
    val_losses = [h.val_loss for h in result.history]
    assert m.best_val_loss == min(val_losses)
    assert val_losses[-1] > m.best_val_loss
    assert evaluate(model, x[400:], y[400:]).loss == pytest.approx(m.best_val_loss, abs=1e-6)


def test_early_stopping_can_be_turned_off() -> None:
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(300, 10)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, size=300))
    config = LoopConfig(
        epochs=12, batch_size=32, learning_rate=1e-2, patience=1, early_stopping=False
    )
    _, result, _ = _run((x[:200], y[:200], x[200:], y[200:]), config)
    assert result.metrics.epochs_run == 12
    assert not result.metrics.early_stopped


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
        RuntimeError("MPS backend out of memory"),
    ],
)
def test_out_of_memory_halves_the_batch_and_completes(error: Exception) -> None:
    def hook(size: int) -> None:
        if size > 100:
            raise error

    data = _data(1000)
    _, result, sink = _run(data, LoopConfig(epochs=3, batch_size=256), oom_hook=hook)
    assert [(o, n) for o, n, _ in sink.reductions] == [(256, 128), (128, 64)]
    assert "out of memory" in sink.reductions[0][2]
    assert result.batch_size_reductions == [(256, 128), (128, 64)]
    assert result.metrics.batch_size == 64
    assert result.metrics.epochs_run == 3
    assert all(h.batch_size == 64 for h in result.history)
    per_epoch = [b for b in sink.batches if b["epoch"] == 1]
    assert per_epoch[-1]["batch"] == per_epoch[-1]["batches"] == math.ceil(800 / 64)
    assert sink.percents == sorted(sink.percents)


def test_out_of_memory_at_one_row_fails_the_job() -> None:
    def hook(size: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(TrainingFailed, match="batch of one row") as info:
        _run(_data(300), LoopConfig(epochs=1, batch_size=8), oom_hook=hook)
    assert info.value.code == 500


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory() -> None:
    def hook(size: int) -> None:
        raise RuntimeError("device-side assert triggered")

    with pytest.raises(RuntimeError, match="device-side assert"):
        _run(_data(300), LoopConfig(epochs=1, batch_size=8), oom_hook=hook)


def test_cancel_stops_within_one_batch() -> None:
    sink = RecordingSink(stop_after_batches=3)
    with pytest.raises(TrainingCancelled, match="cancelled in epoch 1") as info:
        _run(_data(), LoopConfig(epochs=50, batch_size=32), sink=sink)
    assert info.value.code == 409
    assert len(sink.batches) == 3
    assert sink.epochs == []


def test_auto_batch_size() -> None:
    x, y, xv, yv = _data(1500)
    model = MLP(x.shape[1], 3, [16])
    crit = torch.nn.CrossEntropyLoss()
    # The CPU does not search.
    assert find_batch_size(model, x, y, criterion=crit) == CPU_AUTO_BATCH_SIZE
    assert find_batch_size(model, x[:100], y[:100], criterion=crit) == 100
    # The search (what a GPU does): largest power of two <= rows that survives.
    tried: list[int] = []

    def hook(size: int) -> None:
        tried.append(size)
        if size > 64:
            raise torch.OutOfMemoryError("CUDA out of memory")

    assert find_batch_size(model, x, y, criterion=crit, search=True, oom_hook=hook) == 64
    assert tried == [1024, 512, 256, 128, 64]
    assert all(p.grad is None for p in model.parameters())
    assert find_batch_size(model, x, y, criterion=crit, search=True) == 1024

    def always(size: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(TrainingFailed, match="not even a batch of one"):
        find_batch_size(model, x, y, criterion=crit, search=True, oom_hook=always)
    _, result, _ = _run((x, y, xv, yv), LoopConfig(epochs=1, batch_size="auto"))
    assert result.batch_size == CPU_AUTO_BATCH_SIZE


def test_class_weights() -> None:
    w = inverse_frequency_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 9, 4 / 3, 1.0])
    _, weighted, _ = _run(_data(400), LoopConfig(epochs=1))
    assert weighted.class_weights is not None
    _, plain, _ = _run(_data(400), LoopConfig(epochs=1, class_weighting="none"))
    assert plain.class_weights is None


def test_evaluate_combines_chunks_exactly() -> None:
    x, y, _, _ = _data(500)
    torch.manual_seed(0)
    model = MLP(x.shape[1], 3, [8])
    w = torch.tensor([0.5, 1.0, 2.0])
    got = evaluate(model, x, y, class_weights=w, chunk_rows=37)
    with torch.no_grad():
        logits = model(x)
    assert got.loss == pytest.approx(F.cross_entropy(logits, y, weight=w).item(), rel=1e-5)
    assert got.predictions.tolist() == logits.argmax(1).tolist()
    assert got.accuracy == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert model.training


def test_non_finite_loss_fails_clearly() -> None:
    x, y, xv, yv = _data(300)
    x = x.clone()
    x[5, 0] = float("nan")
    with pytest.raises(TrainingFailed, match="training loss became nan in epoch 1"):
        _run((x, y, xv, yv), LoopConfig(epochs=2))


def test_empty_splits_are_refused() -> None:
    x, y, xv, yv = _data(300)
    with pytest.raises(TrainingFailed, match="0 validation rows"):
        _run((x, y, xv[:0], yv[:0]), LoopConfig(epochs=1))


def test_config_from_spec() -> None:
    from bus_contracts.strategy import EarlyStoppingSpec, TrainingSpec

    spec = TrainingSpec(
        epochs=3, batch_size="auto", early_stopping=EarlyStoppingSpec(enabled=False)
    )
    config = LoopConfig.from_spec(spec)
    assert (config.epochs, config.batch_size, config.early_stopping) == (3, "auto", False)
    assert config.seed == spec.seed


def test_small_models_train_on_one_cpu_thread_and_restore_the_setting() -> None:
    from training_engine.loop import cpu_threads_for

    small = MLP(30, 3, [64, 32])
    big = MLP(30, 3, [2048, 1024, 512])
    assert cpu_threads_for(small, 256) == 1
    assert cpu_threads_for(big, 1024) == torch.get_num_threads()
    assert cpu_threads_for(small, 256, requested=3) == 3
    before = torch.get_num_threads()
    seen: list[int] = []

    def hook(size: int) -> None:
        seen.append(torch.get_num_threads())

    _run(_data(300), LoopConfig(epochs=1, batch_size=64), oom_hook=hook)
    assert set(seen) == {1}
    assert torch.get_num_threads() == before
