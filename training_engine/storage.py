"""Saving trained models: atomic, versioned, checksummed.

Layout::

    {models_dir}/{strategy}/{SYMBOLS}_{TIMEFRAME}_v{N}/
        model.pt        state_dict (torch.save; load with weights_only=True)
        metrics.json    training and test metrics, per-epoch history
        metadata.json   strategy, feature order, normaliser, labels, versions,
                        device, task id, data fingerprint, created time, and
                        the sha256 of model.pt and metrics.json
    {models_dir}/{strategy}/{SYMBOLS}_{TIMEFRAME}_latest   "SPX_1d_v3\\n"

``SYMBOLS`` are the symbols joined by ``-``; a list whose name would pass
:data:`MAX_STEM_CHARS` is shortened to the first three symbols, the count of the
others and a hash of all of them (a file name has at most 255 bytes).

A model is written into a hidden temporary directory next to its final place,
every file and the directory are fsynced, then the directory is renamed to the
next free ``v{N}``. ``rename`` refuses a target that exists and is not empty,
so two jobs saving at once both succeed with distinct versions: the loser of a
race scans again and takes the next number. Readers never see a half-written
model. The ``latest`` pointer is rewritten (temp file, ``os.replace``) under a
lock on the strategy directory, and always names the highest version present.

The artifact's checksum (``SavedModel.checksum_sha256``, ``ArtifactRef``) is the
sha256 of ``metadata.json``, which holds the sha256 of every other file: one
digest covers the whole model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import torch

from bus_contracts import bounds
from bus_contracts.messages.performance import (
    EpochMetrics,
    ModelInfo,
    TestMetrics,
    TrainingMetrics,
)
from bus_contracts.strategy import Strategy

if sys.platform != "win32":
    import fcntl

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.pt"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
LATEST_SUFFIX = "_latest"
MAX_STEM_CHARS = 120
_MAX_ATTEMPTS = 10_000


class Normalizer(msgspec.Struct, frozen=True, kw_only=True):
    """Per-feature ``(x - mean) / std``, fitted on the training split only."""

    mean: list[float]
    std: list[float]


class ModelMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """``metadata.json``: everything needed to use the weights on new bars."""

    format_version: int = FORMAT_VERSION
    strategy: Strategy
    symbols: list[str]
    timeframe: str
    start_date: str | None = None
    end_date: str | None = None
    feature_names: list[str]
    labels: list[str]
    """Class names in output-index order (the label map)."""
    normalizer: Normalizer
    model: ModelInfo
    versions: dict[str, str]
    device: str
    mixed_precision: str
    task_id: str
    data_fingerprint: str
    created_at: str = ""
    files: dict[str, str] = {}
    """sha256 of every other file of the model directory."""


class ModelMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """``metrics.json``."""

    training: TrainingMetrics
    test: TestMetrics
    history: list[EpochMetrics]


@dataclass(frozen=True)
class SavedModel:
    path: Path
    version: str
    """``SPX_1d_v3``: the directory name."""
    checksum_sha256: str
    """sha256 of metadata.json (which lists the sha256 of the other files)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_stem(symbols: list[str], timeframe: str) -> str:
    """``SPX-IXIC_1d``: the version-less name of a model directory."""
    pattern = re.compile(bounds.SYMBOL_PATTERN)
    if not symbols or not all(pattern.match(s) for s in symbols):
        raise ValueError(f"invalid symbols for a model name: {symbols!r}")
    if not re.fullmatch(r"[0-9]{1,3}[mhdw]", timeframe):
        raise ValueError(f"invalid timeframe for a model name: {timeframe!r}")
    joined = "-".join(symbols)
    if len(joined) + len(timeframe) + 1 > MAX_STEM_CHARS:
        digest = sha256_bytes(joined.encode())[:10]
        joined = f"{'-'.join(symbols[:3])}-and{len(symbols) - 3}more-{digest}"
    return f"{joined}_{timeframe}"


def _check_name(name: str, what: str) -> str:
    if not re.fullmatch(bounds.STRATEGY_NAME_PATTERN, name):
        raise ValueError(f"invalid {what} for a model path: {name!r}")
    return name


def _inside(root: Path, path: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"model path {path} would leave the models directory {root}")
    return resolved


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def versions(strategy_dir: Path, stem: str, *, dirs_only: bool = True) -> list[int]:
    """Version numbers present for a stem, ascending."""
    pattern = re.compile(rf"{re.escape(stem)}_v([0-9]+)")
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(strategy_dir):
            m = pattern.fullmatch(entry.name)
            if m and (not dirs_only or entry.is_dir(follow_symlinks=False)):
                found.append(int(m.group(1)))
    return sorted(found)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory/.lock`` (POSIX; no lock elsewhere)."""
    if sys.platform == "win32":  # pragma: no cover
        yield
        return
    with (directory / ".lock").open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _update_latest(strategy_dir: Path, stem: str) -> None:
    with _locked(strategy_dir):
        present = versions(strategy_dir, stem)
        if not present:  # pragma: no cover - we just created one
            return
        pointer = strategy_dir / f"{stem}{LATEST_SUFFIX}"
        tmp = strategy_dir / f".{stem}{LATEST_SUFFIX}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        _write_file(tmp, f"{stem}_v{present[-1]}\n".encode())
        os.replace(tmp, pointer)
        _fsync_dir(strategy_dir)


def latest_model(
    models_dir: Path | str, strategy: str, symbols: list[str], timeframe: str
) -> Path | None:
    """The directory the ``latest`` pointer names, or None when there is none."""
    root = Path(models_dir)
    strategy_dir = root / _check_name(strategy, "strategy name")
    stem = model_stem(symbols, timeframe)
    try:
        name = (strategy_dir / f"{stem}{LATEST_SUFFIX}").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not re.fullmatch(rf"{re.escape(stem)}_v[0-9]+", name):
        raise ValueError(f"the latest pointer for {stem} names {name!r}, not a model of it")
    return _inside(root, strategy_dir / name)


def encode_json(value: object) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"


def save_model(
    models_dir: Path | str,
    *,
    metadata: ModelMetadata,
    state_dict: Mapping[str, torch.Tensor],
    metrics: ModelMetrics,
) -> SavedModel:
    """Write a new model version atomically; returns where it went (see module doc)."""
    root = Path(models_dir)
    strategy_dir = root / _check_name(metadata.strategy.name, "strategy name")
    stem = model_stem(metadata.symbols, metadata.timeframe)
    strategy_dir.mkdir(parents=True, exist_ok=True)
    _inside(root, strategy_dir)

    buffer = io.BytesIO()
    torch.save({k: v.detach().to("cpu") for k, v in state_dict.items()}, buffer)
    weights = buffer.getvalue()
    metrics_bytes = encode_json(metrics)
    final_meta = msgspec.structs.replace(
        metadata,
        created_at=metadata.created_at or dt.datetime.now(dt.UTC).isoformat(),
        files={WEIGHTS_FILE: sha256_bytes(weights), METRICS_FILE: sha256_bytes(metrics_bytes)},
    )
    meta_bytes = encode_json(final_meta)

    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{stem}-", dir=strategy_dir))
    try:
        _write_file(tmp / WEIGHTS_FILE, weights)
        _write_file(tmp / METRICS_FILE, metrics_bytes)
        _write_file(tmp / METADATA_FILE, meta_bytes)
        _fsync_dir(tmp)
        final = _claim_version(root, strategy_dir, stem, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(strategy_dir)
    _update_latest(strategy_dir, stem)
    return SavedModel(path=final, version=final.name, checksum_sha256=sha256_bytes(meta_bytes))


def _claim_version(root: Path, strategy_dir: Path, stem: str, tmp: Path) -> Path:
    """Rename ``tmp`` to the next free ``{stem}_v{N}``, retrying when another job wins."""
    for _ in range(_MAX_ATTEMPTS):
        present = versions(strategy_dir, stem, dirs_only=False)
        final = _inside(root, strategy_dir / f"{stem}_v{(present[-1] if present else 0) + 1}")
        if os.path.lexists(final):  # a racing job, or something that is not a model
            continue
        try:
            os.rename(tmp, final)
        except OSError:
            if os.path.lexists(final):  # lost the race: try the next number
                continue
            raise
        return final
    raise RuntimeError(f"no free version for {stem} in {strategy_dir}")  # pragma: no cover
