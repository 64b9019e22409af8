from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import threading
from pathlib import Path

import msgspec
import pytest
import torch

from bus_contracts.messages import performance as perf
from bus_contracts.strategy import Strategy
from tests.engine.saved_metrics import placeholder_metrics
from training_engine import storage
from training_engine.storage import (
    ModelMetadata,
    Normalizer,
    latest_model,
    model_stem,
    save_model,
    sha256_file,
)


def _metadata(symbols: list[str] | None = None, name: str = "demo") -> ModelMetadata:
    return ModelMetadata(
        strategy=Strategy(name=name),
        symbols=symbols or ["SPX"],
        timeframe="1d",
        feature_names=["a", "b"],
        labels=["BUY", "HOLD", "SELL"],
        normalizer=Normalizer(mean=[0.0, 1.0], std=[1.0, 2.0]),
        model=perf.ModelInfo(
            architecture="mlp(2-4-3)",
            parameters=27,
            size_bytes=108,
            feature_names=["a", "b"],
            input_features=2,
            classes=["BUY", "HOLD", "SELL"],
        ),
        versions={"torch": "x"},
        device="cpu",
        mixed_precision="off",
        task_id="t1",
        data_fingerprint="f" * 64,
    )


def _save(root: Path, **kw: object) -> storage.SavedModel:
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    return save_model(
        root, metadata=_metadata(**kw), state_dict=state, metrics=placeholder_metrics()
    )  # type: ignore[arg-type]


def test_save_writes_a_complete_checksummed_version(tmp_path: Path) -> None:
    saved = _save(tmp_path)
    assert saved.path == (tmp_path / "demo" / "SPX_1d_v1").resolve()
    assert saved.version == "SPX_1d_v1"
    assert sorted(p.name for p in saved.path.iterdir()) == [
        "metadata.json",
        "metrics.json",
        "model.pt",
    ]
    meta = json.loads((saved.path / "metadata.json").read_text())
    assert meta["files"] == {
        "model.pt": sha256_file(saved.path / "model.pt"),
        "metrics.json": sha256_file(saved.path / "metrics.json"),
    }
    assert saved.checksum_sha256 == sha256_file(saved.path / "metadata.json")
    assert meta["created_at"].endswith("+00:00")
    assert meta["normalizer"] == {"mean": [0.0, 1.0], "std": [1.0, 2.0]}
    decoded = msgspec.json.decode((saved.path / "metadata.json").read_bytes(), type=ModelMetadata)
    assert decoded.strategy.name == "demo"
    weights = torch.load(saved.path / "model.pt", weights_only=True)
    assert weights["w"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert latest_model(tmp_path, "demo", ["SPX"], "1d") == saved.path
    assert not [p for p in (tmp_path / "demo").iterdir() if p.name.startswith(".tmp")]


def test_versions_count_up_and_latest_follows(tmp_path: Path) -> None:
    assert latest_model(tmp_path, "demo", ["SPX"], "1d") is None
    first = _save(tmp_path)
    second = _save(tmp_path)
    other = _save(tmp_path, symbols=["SPX", "IXIC"])
    assert (first.version, second.version, other.version) == (
        "SPX_1d_v1",
        "SPX_1d_v2",
        "SPX-IXIC_1d_v1",
    )
    assert latest_model(tmp_path, "demo", ["SPX"], "1d") == second.path
    assert latest_model(tmp_path, "demo", ["SPX", "IXIC"], "1d") == other.path
    assert (tmp_path / "demo" / "SPX_1d_latest").read_text() == "SPX_1d_v2\n"


def test_a_stray_file_with_a_version_name_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "SPX_1d_v1").write_text("not a model")
    assert _save(tmp_path).version == "SPX_1d_v2"


def test_concurrent_saves_in_threads_get_distinct_versions(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(_save(tmp_path).version)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=lambda v: int(v.rsplit("v", 1)[1])) == [
        f"SPX_1d_v{i}" for i in range(1, 9)
    ]
    assert (
        latest_model(tmp_path, "demo", ["SPX"], "1d") == (tmp_path / "demo" / "SPX_1d_v8").resolve()
    )


def _process_save(
    root: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue[str]
) -> None:
    barrier.wait()
    out.put(_save(Path(root)).version)


def test_concurrent_saves_in_processes_get_distinct_versions(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    out: multiprocessing.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_process_save, args=(str(tmp_path), barrier, out)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    versions = sorted(out.get(timeout=5) for _ in procs)
    assert versions == ["SPX_1d_v1", "SPX_1d_v2", "SPX_1d_v3"]
    assert (
        latest_model(tmp_path, "demo", ["SPX"], "1d") == (tmp_path / "demo" / "SPX_1d_v3").resolve()
    )


def test_a_failed_save_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = storage._write_file
    calls = []

    def flaky(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(storage, "_write_file", flaky)
    with pytest.raises(OSError, match="No space"):
        _save(tmp_path)
    assert [p.name for p in (tmp_path / "demo").iterdir() if not p.name.startswith(".lock")] == []


def test_model_names_stay_short_and_safe() -> None:
    assert model_stem(["SPX", "IXIC"], "1d") == "SPX-IXIC_1d"
    many = [f"SYM{i:02d}LONGNAME{i:03d}" for i in range(20)]
    stem = model_stem(many, "1h")
    assert len(stem) <= storage.MAX_STEM_CHARS
    assert stem.startswith("SYM00LONGNAME000-SYM01LONGNAME001-SYM02LONGNAME002-and17more-")
    assert stem != model_stem([*many[:-1], "OTHER"], "1h")
    for bad in (["../x"], ["a/b"], []):
        with pytest.raises(ValueError, match="invalid symbols"):
            model_stem(bad, "1d")
    with pytest.raises(ValueError, match="invalid timeframe"):
        model_stem(["SPX"], "../1d")


def test_paths_that_leave_the_models_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid strategy name"):
        _save(tmp_path / "models", name="../escape")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "models").mkdir()
    os.symlink(outside, tmp_path / "models" / "demo")
    with pytest.raises(ValueError, match="would leave the models directory"):
        _save(tmp_path / "models")
    assert list(outside.iterdir()) == []


def test_a_latest_pointer_naming_something_else_is_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    (tmp_path / "demo" / "SPX_1d_latest").write_text("../../etc\n")
    with pytest.raises(ValueError, match="not a model of it"):
        latest_model(tmp_path, "demo", ["SPX"], "1d")


def test_losing_a_race_for_a_version_takes_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(tmp_path)
    real = storage.versions
    stale = {"left": 2}

    def stale_scan(strategy_dir: Path, stem: str, *, dirs_only: bool = True) -> list[int]:
        # The scan a racing job made before the other one renamed its v1.
        if not dirs_only and stale["left"]:
            stale["left"] -= 1
            return []
        return real(strategy_dir, stem, dirs_only=dirs_only)

    monkeypatch.setattr(storage, "versions", stale_scan)
    real_lexists = os.path.lexists
    checks: list[str] = []

    def late_lexists(path: str | os.PathLike[str]) -> bool:
        # The other job's rename lands between our check and our rename.
        checks.append(str(path))
        return False if len(checks) == 1 else real_lexists(path)

    monkeypatch.setattr(os.path, "lexists", late_lexists)
    assert _save(tmp_path).version == "SPX_1d_v2"
    assert stale["left"] == 0
