from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bus_contracts.messages import performance as perf
from bus_contracts.strategy import Strategy
from tests.engine.saved_metrics import placeholder_metrics
from training_engine.artifact import (
    ArtifactError,
    LoadedModel,
    load_model,
    pack_artifact,
    unpack_artifact,
)
from training_engine.data import load_ohlcv
from training_engine.dataset import compute_features
from training_engine.errors import DataNotFound
from training_engine.model import build_model, parameter_count
from training_engine.run import fit_normalizer
from training_engine.storage import ModelMetadata, save_model

DATA = Path(__file__).resolve().parents[2] / "data"
LABELS = ["BUY", "HOLD", "SELL"]


@pytest.fixture(scope="module")
def spx_features() -> tuple[np.ndarray, list[str]]:
    bars = load_ohlcv(DATA, "SPX", "1d")
    return compute_features(Strategy(), bars)


@pytest.fixture
def model_dir(tmp_path: Path, spx_features: tuple[np.ndarray, list[str]]) -> Path:
    """An (untrained) default-strategy model, saved the way run_training saves one."""
    features, names = spx_features
    strategy = Strategy()
    torch.manual_seed(0)
    model = build_model(strategy.model, len(names), 3)
    complete = features[np.isfinite(features).all(axis=1)].astype(np.float32)
    info = perf.ModelInfo(
        architecture=model.describe(),
        parameters=parameter_count(model),
        size_bytes=0,
        feature_names=names,
        input_features=len(names),
        classes=LABELS,
    )
    metadata = ModelMetadata(
        strategy=strategy,
        symbols=["SPX"],
        timeframe="1d",
        feature_names=names,
        labels=LABELS,
        normalizer=fit_normalizer(complete),
        model=info,
        versions={},
        device="cpu",
        mixed_precision="off",
        task_id="t",
        data_fingerprint="x",
    )
    saved = save_model(
        tmp_path / "models",
        metadata=metadata,
        state_dict=model.state_dict(),
        metrics=placeholder_metrics(),
    )
    return saved.path


def _reference(loaded: LoadedModel, features: np.ndarray) -> list[str]:
    x = torch.from_numpy(((features - loaded.mean) / loaded.std).astype(np.float32))
    with torch.no_grad():
        idx = loaded.model(x).argmax(1).tolist()
    return [LABELS[i] for i in idx]


def test_load_and_predict_features(
    model_dir: Path, spx_features: tuple[np.ndarray, list[str]]
) -> None:
    loaded = load_model(model_dir)
    assert loaded.version == "SPX_1d_v1"
    assert loaded.labels == LABELS
    assert not loaded.model.training
    assert next(loaded.model.parameters()).device.type == "cpu"
    features = spx_features[0][-50:].astype(np.float32)
    assert loaded.predict_features(features) == _reference(loaded, features)
    probs = loaded.predict_proba_features(features)
    assert probs.shape == (50, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert loaded.metrics().training.epochs_run == placeholder_metrics().training.epochs_run
    with pytest.raises(ValueError, match=r"shape \[n, 30\]"):
        loaded.predict_features(features[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        loaded.predict_features(np.full((1, 30), np.nan))


def test_predict_on_bars_and_csv_paths(
    model_dir: Path, tmp_path: Path, spx_features: tuple[np.ndarray, list[str]]
) -> None:
    loaded = load_model(model_dir)
    bars = load_ohlcv(DATA, "SPX", "1d")
    features = spx_features[0]
    complete = np.isfinite(features).all(axis=1)
    expected = _reference(loaded, features[complete].astype(np.float32))
    assert loaded.predict(bars) == expected
    detailed = loaded.predict_detailed(bars)
    assert list(detailed.timestamps) == list(bars.timestamps[complete])
    assert detailed.probabilities.shape == (len(expected), 3)
    # A CSV path: under the canonical name, and under any other name.
    assert loaded.predict(DATA / "SPX_1d.csv") == expected
    other = tmp_path / "latest_bars.csv"
    other.write_bytes((DATA / "SPX_1d.csv").read_bytes())
    assert loaded.predict(str(other), symbol="SPX") == expected
    with pytest.raises(DataNotFound):
        loaded.predict(tmp_path / "missing.csv")


def test_a_tampered_weights_file_is_refused(model_dir: Path) -> None:
    weights = model_dir / "model.pt"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model.pt does not match its recorded sha256") as info:
        load_model(model_dir)
    assert info.value.code == 422


def test_missing_files_are_refused(model_dir: Path) -> None:
    (model_dir / "metrics.json").unlink()
    with pytest.raises(ArtifactError, match=r"incomplete model: metrics.json is missing"):
        load_model(model_dir)
    (model_dir / "metadata.json").unlink()
    with pytest.raises(ArtifactError, match=r"incomplete model: metadata.json is missing"):
        load_model(model_dir)
    with pytest.raises(DataNotFound):
        load_model(model_dir.parent / "SPX_1d_v9")


def test_metadata_is_checked_against_the_artifact_checksum(model_dir: Path) -> None:
    from training_engine.storage import sha256_file

    good = sha256_file(model_dir / "metadata.json")
    assert load_model(model_dir, expected_checksum=good).version == "SPX_1d_v1"
    meta = model_dir / "metadata.json"
    meta.write_text(meta.read_text().replace('"task_id": "t"', '"task_id": "u"'))
    with pytest.raises(ArtifactError, match=r"metadata.json does not match"):
        load_model(model_dir, expected_checksum=good)
    meta.write_text("{not json")
    with pytest.raises(ArtifactError, match=r"metadata.json is not valid"):
        load_model(model_dir)


def test_weights_that_do_not_fit_the_model_are_refused(model_dir: Path) -> None:
    import hashlib
    import json

    buf = io.BytesIO()
    torch.save({"0.weight": torch.zeros(2, 2)}, buf)
    (model_dir / "model.pt").write_bytes(buf.getvalue())
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["files"]["model.pt"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="does not fit the recorded model"):
        load_model(model_dir)


def test_pack_and_unpack_round_trip(model_dir: Path, tmp_path: Path) -> None:
    data = pack_artifact(model_dir)
    out = unpack_artifact(data, tmp_path / "fetched")
    assert out == tmp_path / "fetched" / "SPX_1d_v1"
    for name in ("model.pt", "metadata.json", "metrics.json"):
        assert (out / name).read_bytes() == (model_dir / name).read_bytes()
    assert load_model(out).labels == LABELS
    with pytest.raises(ArtifactError, match="already exists"):
        unpack_artifact(data, tmp_path / "fetched")
    assert sorted(p.name for p in (tmp_path / "fetched").iterdir()) == ["SPX_1d_v1"]


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, payload in members:
            info.size = len(payload) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return buf.getvalue()


def _file(name: str, payload: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), payload


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([_file("../evil/model.pt")], "unsafe path"),
        ([_file("/etc/model.pt")], "unsafe path"),
        ([_file("m/../../model.pt")], "unsafe path"),
        ([_link("m/model.pt", "/etc/passwd")], "not a regular file"),
        ([_link("m/model.pt", "../../x", tarfile.LNKTYPE)], "not a regular file"),
        ([_file("m/evil.sh")], "unexpected archive member"),
        ([_file("m/sub/model.pt")], "unexpected archive member"),
        ([_file("model.pt")], "unexpected archive member"),
        ([_file("a/model.pt"), _file("b/metadata.json")], "more than one model directory"),
        ([], "no model directory"),
    ],
)
def test_unsafe_archives_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], problem: str
) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(ArtifactError, match=problem):
        unpack_artifact(_tar(members), dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_an_incomplete_or_broken_archive_is_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a model archive"):
        unpack_artifact(b"not a tar at all", tmp_path / "a")
    partial = _tar([_file("SPX_1d_v1/model.pt", (model_dir / "model.pt").read_bytes())])
    with pytest.raises(ArtifactError, match=r"metadata.json is missing"):
        unpack_artifact(partial, tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []
    with pytest.raises(ArtifactError, match="not a model directory"):
        pack_artifact(tmp_path / "b")
