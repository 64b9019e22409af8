from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import torch

from bus_contracts.messages.start import StartTraining
from training_engine.artifact import load_model
from training_engine.data import load_ohlcv
from training_engine.errors import DataNotFound, DeviceUnavailable, TrainingCancelled
from training_engine.progress import PHASE_SPANS
from training_engine.run import TrainingOutcome, run_training
from training_engine.storage import latest_model

from . import RecordingSink

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


def _request(epochs: int, **training: object) -> StartTraining:
    request = StartTraining(symbols=["SPX"], timeframe="1d", device="cpu")
    spec = msgspec.structs.replace(request.strategy.training, epochs=epochs, **training)
    return msgspec.structs.replace(
        request, strategy=msgspec.structs.replace(request.strategy, training=spec)
    )


def _run(
    tmp_path: Path, request: StartTraining, sink: RecordingSink | None = None, **kw: object
) -> TrainingOutcome:
    return run_training(
        request,
        task_id="job-1",
        data_dir=DATA,
        models_dir=tmp_path / "models",
        sink=sink or RecordingSink(),
        **kw,  # type: ignore[arg-type]
    )


def test_default_strategy_on_spx_end_to_end(tmp_path: Path) -> None:
    sink = RecordingSink()
    outcome = _run(tmp_path, _request(3), sink)

    assert [p[0] for p in sink.phases] == list(PHASE_SPANS)
    assert [p[1] for p in sink.phases] == [span[0] for span in PHASE_SPANS.values()]
    assert sink.percents == sorted(sink.percents)
    assert "cpu" in sink.phases[3][2]
    assert len(sink.epochs) == 3
    assert sink.batches

    t, m = outcome.training, outcome.test
    assert t.epochs_run == 3
    assert t.train_samples > 3000
    assert t.batch_size == 256
    assert m.labels == ["BUY", "HOLD", "SELL"]
    assert m.samples == sum(map(sum, m.confusion_matrix))
    assert 0.0 < m.accuracy <= 1.0
    assert 0.0 <= m.baseline_accuracy <= 1.0
    assert outcome.model.input_features == 30
    assert outcome.model.feature_names[0] == "rsi_14_low"
    assert outcome.model.parameters == 30 * 64 + 64 + 64 * 32 + 32 + 32 * 3 + 3
    assert outcome.resources.device == "cpu"
    assert outcome.resources.mixed_precision == "off"
    assert outcome.resources.peak_gpu_memory_bytes is None
    assert outcome.resources.peak_rss_bytes > 50 * 2**20
    assert len(outcome.history) == 3

    # The saved model: layout, metadata, latest pointer.
    model_dir = outcome.model_dir
    assert model_dir == (tmp_path / "models" / "neuro_fuzzy_default" / "SPX_1d_v1").resolve()
    assert outcome.artifact.model_version == "SPX_1d_v1"
    assert outcome.artifact.model_path == str(model_dir)
    assert latest_model(tmp_path / "models", "neuro_fuzzy_default", ["SPX"], "1d") == model_dir
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["task_id"] == "job-1"
    assert meta["device"] == "cpu"
    assert meta["labels"] == ["BUY", "HOLD", "SELL"]
    assert len(meta["normalizer"]["mean"]) == 30
    assert len(meta["data_fingerprint"]) == 64
    assert set(meta["versions"]) >= {"python", "torch", "numpy"}
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert len(metrics["history"]) == 3
    assert metrics["test"]["accuracy"] == m.accuracy

    # The backend's view: load it on the CPU and predict the last 100 bars.
    loaded = load_model(model_dir, expected_checksum=outcome.artifact.checksum_sha256)
    bars = load_ohlcv(DATA, "SPX", "1d")
    predictions = loaded.predict(bars)
    assert len(predictions) == len(bars) - 49  # SMA 50 is the longest warm-up
    last_100 = predictions[-100:]
    assert len(last_100) == 100
    assert set(last_100) <= {"BUY", "HOLD", "SELL"}

    summary = outcome.summary()
    assert summary.test_accuracy == m.accuracy
    assert summary.test_macro_f1 == m.macro_f1
    assert summary.model_version == "SPX_1d_v1"
    assert summary.epochs_run == 3
    assert summary.duration_s >= t.duration_s
    performance = outcome.performance(executor="local", host_id="h")
    assert performance.task_id == "job-1"
    assert performance.history == outcome.history

    # A second run is the next version; the same seed gives the same weights.
    again = _run(tmp_path, _request(3))
    assert again.artifact.model_version == "SPX_1d_v2"
    assert (again.model_dir / "model.pt").read_bytes() == (model_dir / "model.pt").read_bytes()


def test_thirty_epochs_beat_the_majority_baseline(tmp_path: Path) -> None:
    outcome = _run(tmp_path, _request(30))
    t, m = outcome.training, outcome.test
    assert t.epochs_run <= 30
    assert t.early_stopped == (t.epochs_run < 30)
    assert m.accuracy > m.baseline_accuracy
    assert m.macro_f1 > 0.3
    assert t.best_val_loss == min(h.val_loss for h in outcome.history)


def test_out_of_memory_during_a_job_is_reported_and_survived(tmp_path: Path) -> None:
    sink = RecordingSink()

    def hook(size: int) -> None:
        if size > 64:
            raise torch.OutOfMemoryError("CUDA out of memory")

    outcome = _run(tmp_path, _request(2), sink, oom_hook=hook)
    assert [r[:2] for r in sink.reductions] == [(256, 128), (128, 64)]
    assert outcome.training.batch_size == 64
    assert sink.percents == sorted(sink.percents)


def test_cancel_before_training_saves_nothing(tmp_path: Path) -> None:
    sink = RecordingSink(stop_after_batches=0)
    with pytest.raises(TrainingCancelled):
        _run(tmp_path, _request(3), sink)
    assert not (tmp_path / "models").exists()


def test_cancel_during_training_saves_nothing(tmp_path: Path) -> None:
    sink = RecordingSink(stop_after_batches=5)
    with pytest.raises(TrainingCancelled, match="epoch 1"):
        _run(tmp_path, _request(3), sink)
    assert len(sink.batches) == 5
    assert not (tmp_path / "models").exists()


def test_unavailable_device_and_missing_data_fail_before_any_work(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        sink = RecordingSink()
        with pytest.raises(DeviceUnavailable, match="cuda"):
            _run(tmp_path, _request(1), sink, device="cuda")
        assert sink.phases == []
    request = msgspec.structs.replace(_request(1), symbols=["NOPE"])
    with pytest.raises(DataNotFound) as info:
        _run(tmp_path, request)
    assert info.value.code == 404


def test_the_command_line_prints_the_figures(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "training_engine.run",
            "SPX",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--data-dir",
            str(DATA),
            "--models-dir",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "training: cpu" in out
    assert "test       accuracy" in out
    assert "baselines: train majority" in out
    assert "test majority" in out
    assert (tmp_path / "m" / "neuro_fuzzy_default" / "SPX_1d_v1" / "model.pt").is_file()
