"""Using a saved model: load and verify it, predict on new bars, ship it as bytes.

:func:`load_model` checks every file against the sha256 recorded in
``metadata.json`` (and, when given, ``metadata.json`` itself against the
artifact checksum of the result) before it trusts anything, loads the weights
with ``weights_only=True`` (no pickled code runs) and rebuilds the MLP on the
CPU. :meth:`LoadedModel.predict` recomputes the saved strategy's indicators and
fuzzy features from OHLCV bars, normalises them with the saved training-split
normaliser and returns a class name per bar that has its full warm-up.

:func:`pack_artifact` / :func:`unpack_artifact` turn a model directory into a
tar archive and back, for an object store. Unpacking accepts only regular files
directly under one top-level directory with a model's name; links, devices,
absolute paths, ``..`` and oversized members are refused, and the directory
appears atomically (extracted beside its final place, then renamed).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import torch

from training_engine.data import Bars, load_ohlcv
from training_engine.dataset import compute_features
from training_engine.errors import DataNotFound, EngineError
from training_engine.model import MLP
from training_engine.storage import (
    METADATA_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    ModelMetadata,
    ModelMetrics,
    sha256_bytes,
)

MAX_ARTIFACT_BYTES = 2 * 1024**3
_MEMBER_NAMES = frozenset({WEIGHTS_FILE, METADATA_FILE, METRICS_FILE})
_DIR_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


class ArtifactError(EngineError):
    """A model directory or archive that is incomplete, tampered with or unsafe."""

    code = 422

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True, eq=False)
class Predictions:
    timestamps: npt.NDArray[np.datetime64]
    """The bar time of each prediction (UTC)."""
    classes: list[str]
    probabilities: npt.NDArray[np.float32]
    """``[n, classes]`` in ``LoadedModel.labels`` order."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified model on the CPU, ready to predict."""

    path: Path
    metadata: ModelMetadata
    model: MLP
    mean: npt.NDArray[np.float32]
    std: npt.NDArray[np.float32]

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata.feature_names)

    @property
    def labels(self) -> list[str]:
        return list(self.metadata.labels)

    def metrics(self) -> ModelMetrics:
        return msgspec.json.decode((self.path / METRICS_FILE).read_bytes(), type=ModelMetrics)

    def predict_proba_features(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Class probabilities ``[n, classes]`` for raw (un-normalised) features."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ValueError(
                f"expected features of shape [n, {len(self.mean)}] in the order "
                f"{self.feature_names}, got {list(x.shape)}"
            )
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values")
        normalised = torch.from_numpy((x - self.mean) / self.std)
        with torch.inference_mode():
            probs = torch.softmax(self.model(normalised), dim=1)
        return probs.numpy()

    def predict_features(self, features: npt.ArrayLike) -> list[str]:
        """A class name per row of raw features (columns in ``feature_names`` order)."""
        probs = self.predict_proba_features(features)
        labels = self.labels
        return [labels[i] for i in probs.argmax(axis=1)]

    def predict(
        self,
        bars: Bars | Path | str,
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> list[str]:
        """A class name per bar that has its full warm-up, oldest first.

        ``bars`` is a :class:`training_engine.data.Bars` or the path of a CSV
        file (any layout :func:`training_engine.data.load_ohlcv` accepts);
        ``symbol`` and ``timeframe`` default to the model's first symbol and its
        timeframe.
        """
        return self.predict_detailed(bars, symbol, timeframe).classes

    def predict_detailed(
        self,
        bars: Bars | Path | str,
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> Predictions:
        """Like :meth:`predict`, with each prediction's bar time and probabilities."""
        loaded = bars if isinstance(bars, Bars) else self._load_csv(Path(bars), symbol, timeframe)
        features, names = compute_features(self.metadata.strategy, loaded)
        if names != self.feature_names:  # pragma: no cover - the same code made both
            raise ArtifactError(
                self.path,
                f"the strategy yields features {names}, the model expects {self.feature_names}",
            )
        complete = np.isfinite(features).all(axis=1)
        probs = self.predict_proba_features(features[complete])
        labels = self.labels
        return Predictions(
            timestamps=loaded.timestamps[complete],
            classes=[labels[i] for i in probs.argmax(axis=1)],
            probabilities=probs,
        )

    def _load_csv(self, path: Path, symbol: str | None, timeframe: str | None) -> Bars:
        symbol = symbol or self.metadata.symbols[0]
        timeframe = timeframe or self.metadata.timeframe
        if path.name == f"{symbol}_{timeframe}.csv":
            return load_ohlcv(path.parent, symbol, timeframe)
        if not path.is_file():
            raise DataNotFound(path)
        # load_ohlcv reads {dir}/{SYMBOL}_{TIMEFRAME}.csv: give the file that name.
        with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
            shutil.copyfile(path, Path(tmp) / f"{symbol}_{timeframe}.csv")
            return load_ohlcv(tmp, symbol, timeframe)


def _read_checked(directory: Path, name: str, expected: str | None) -> bytes:
    path = directory / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(directory, f"incomplete model: {name} is missing") from None
    if expected is not None and sha256_bytes(data) != expected:
        raise ArtifactError(
            directory, f"{name} does not match its recorded sha256 (corrupted or tampered with)"
        )
    return data


def load_model(path: Path | str, *, expected_checksum: str | None = None) -> LoadedModel:
    """Verify and load a model directory onto the CPU (see the module doc).

    ``expected_checksum`` is the artifact checksum from the job's result
    (the sha256 of ``metadata.json``); without it ``metadata.json`` is trusted
    and the other files are checked against it.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise DataNotFound(directory)
    meta_bytes = _read_checked(directory, METADATA_FILE, expected_checksum)
    try:
        metadata = msgspec.json.decode(meta_bytes, type=ModelMetadata)
    except msgspec.DecodeError as exc:
        raise ArtifactError(directory, f"{METADATA_FILE} is not valid: {exc}") from None
    for name in (WEIGHTS_FILE, METRICS_FILE):
        if name not in metadata.files:
            raise ArtifactError(directory, f"{METADATA_FILE} records no checksum for {name}")
    weights = _read_checked(directory, WEIGHTS_FILE, metadata.files[WEIGHTS_FILE])
    _read_checked(directory, METRICS_FILE, metadata.files[METRICS_FILE])

    n_features = len(metadata.feature_names)
    spec = metadata.strategy.model
    model = MLP(
        n_features, len(metadata.labels), list(spec.hidden_layers), spec.activation, spec.dropout
    )
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise ArtifactError(
            directory, f"{WEIGHTS_FILE} does not fit the recorded model: {exc}"
        ) from None
    model.eval()
    mean = np.asarray(metadata.normalizer.mean, dtype=np.float32)
    std = np.asarray(metadata.normalizer.std, dtype=np.float32)
    if mean.shape != (n_features,) or std.shape != (n_features,) or not (std > 0).all():
        raise ArtifactError(directory, "the recorded normaliser does not fit the features")
    return LoadedModel(path=directory, metadata=metadata, model=model, mean=mean, std=std)


def pack_artifact(directory: Path | str) -> bytes:
    """A gzipped tar of a model directory (its files under the directory's name)."""
    src = Path(directory)
    names = sorted(p.name for p in src.iterdir())
    unexpected = [n for n in names if n not in _MEMBER_NAMES]
    if unexpected or METADATA_FILE not in names:
        raise ArtifactError(src, f"not a model directory (files: {names})")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names:
            info = tar.gettarinfo(src / name, arcname=f"{src.name}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with (src / name).open("rb") as fh:
                tar.addfile(info, fh)
    return buffer.getvalue()


def _safe_members(tar: tarfile.TarFile, origin: str) -> tuple[str, list[tarfile.TarInfo]]:
    top: str | None = None
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar.getmembers():
        parts = member.name.split("/")
        if member.name.startswith(("/", "\\")) or ".." in parts or "\\" in member.name:
            raise ArtifactError(origin, f"unsafe path in archive: {member.name!r}")
        if member.isdir() and len(parts) == 1:
            continue
        if not member.isfile():
            raise ArtifactError(origin, f"archive member {member.name!r} is not a regular file")
        if len(parts) != 2 or parts[1] not in _MEMBER_NAMES or not _DIR_NAME.fullmatch(parts[0]):
            raise ArtifactError(origin, f"unexpected archive member {member.name!r}")
        if top is not None and parts[0] != top:
            raise ArtifactError(origin, "archive holds more than one model directory")
        top = parts[0]
        total += member.size
        if total > MAX_ARTIFACT_BYTES:
            raise ArtifactError(origin, "archive is too large")
        members.append(member)
    if top is None or top in (".", ".."):
        raise ArtifactError(origin, "archive holds no model directory")
    return top, members


def _open_tar(data: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def unpack_artifact(data: bytes, dest_dir: Path | str) -> Path:
    """Extract a :func:`pack_artifact` archive into ``dest_dir``; returns the model directory.

    Refuses unsafe archives (see the module doc) and a model directory that
    already exists. The result is verified with :func:`load_model`'s checks.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        tar = _open_tar(data)
    except tarfile.TarError as exc:
        raise ArtifactError(dest, f"not a model archive: {exc}") from None
    with tar:
        top, members = _safe_members(tar, str(dest))
        final = dest / top
        if os.path.lexists(final):
            raise ArtifactError(final, "a model directory of that name already exists")
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
        try:
            for member in members:
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise ArtifactError(dest, f"cannot read {member.name!r}")
                with source, (tmp / member.name.split("/")[1]).open("xb") as out:
                    shutil.copyfileobj(source, out)
            load_model(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
