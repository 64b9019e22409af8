"""From a training request to a labelled feature matrix, symbol by symbol.

Each symbol is loaded, turned into indicators and fuzzy features, and labelled
on its own closes; rows still in the indicators' warm-up and the unlabelled
tail are dropped; then the symbols are stacked, each in its own chronological
order. :func:`split_indices` splits every symbol chronologically and leaves a
gap of ``lookahead_bars`` rows after its train and validation parts ("purging"),
so no training label is computed from prices of a later part.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bus_contracts.messages.common import Phase
from bus_contracts.messages.start import StartTraining
from bus_contracts.strategy import IndicatorSpec, SplitSpec, Strategy
from training_engine.data import Bars, load_ohlcv
from training_engine.errors import BadData, BadStrategy, TrainingCancelled
from training_engine.fuzzy import fuzzify, resolve_output
from training_engine.indicators import compute_indicator, resolved_params, warmup_bars
from training_engine.labels import LABEL_NAMES, zigzag_labels
from training_engine.progress import PHASE_SPANS, ProgressSink

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SymbolPart:
    """Where one symbol's rows lie in the dataset, and where they came from."""

    symbol: str
    path: Path
    start: int
    stop: int
    bars: int
    """Bars loaded after the date filter (warm-up and look-ahead included)."""
    fingerprint: str


@dataclass(frozen=True, eq=False)
class Dataset:
    features: npt.NDArray[np.float32]
    labels: Ints
    feature_names: tuple[str, ...]
    label_names: tuple[str, ...]
    timestamps: npt.NDArray[np.datetime64]
    symbol_ids: Ints
    """Per row, the index of its symbol in ``symbols``."""
    symbols: tuple[str, ...]
    parts: tuple[SymbolPart, ...]
    timeframe: str
    warmup_bars: int
    lookahead_bars: int
    fingerprint: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def bars_used(self) -> dict[str, int]:
        return {part.symbol: part.bars for part in self.parts}


def _used_indicators(strategy: Strategy) -> list[IndicatorSpec]:
    """Every spec checked; those a fuzzy set reads, in the strategy's order."""
    for spec in strategy.indicators:
        resolved_params(spec)
    used = {resolve_output(strategy, fuzzy)[0] for fuzzy in strategy.fuzzy_sets}
    return [spec for spec in strategy.indicators if spec.id in used]


def feature_warmup(strategy: Strategy) -> int:
    """Leading bars whose features are not all defined."""
    return max(warmup_bars(spec) for spec in _used_indicators(strategy))


def compute_features(strategy: Strategy, bars: Bars) -> tuple[npt.NDArray[np.float64], list[str]]:
    """Fuzzy features ``[len(bars), f]`` (NaN in the warm-up) and their names."""
    outputs = {spec.id: compute_indicator(spec, bars) for spec in _used_indicators(strategy)}
    return fuzzify(strategy, outputs)


def _split_bounds(m: Ints, split: SplitSpec) -> tuple[Ints, Ints]:
    first = np.floor(m * split.train + 1e-9).astype(np.int64)
    second = np.floor(m * (split.train + split.validation) + 1e-9).astype(np.int64)
    return first, second


def min_rows_to_split(split: SplitSpec, purge: int) -> int:
    """The fewest rows per symbol that give every part at least one row."""
    test = 1.0 - split.train - split.validation
    if abs(split.train + split.validation + split.test - 1.0) > 1e-6 or test <= 0:
        raise BadStrategy("split fractions must sum to 1", field="strategy.training.split")
    bound = int(np.ceil(max((purge + 2) / split.train, (purge + 2) / split.validation, 1 / test)))
    if bound > 10_000_000:
        raise BadStrategy("split fractions too small to split", field="strategy.training.split")
    m = np.arange(1, bound + 2, dtype=np.int64)
    first, second = _split_bounds(m, split)
    ok = (first - purge >= 1) & (second - first - purge >= 1) & (m - second >= 1)
    if not ok.any():  # pragma: no cover - the bound above always leaves one
        raise BadStrategy("split fractions too small to split", field="strategy.training.split")
    return int(m[np.argmax(ok)])


def split_indices(
    dataset: Dataset, split: SplitSpec, *, purge_bars: int | None = None
) -> tuple[Ints, Ints, Ints]:
    """(train, validation, test) row indices: each symbol split chronologically by
    the fractions, ``purge_bars`` (default: the label look-ahead) dropped at the
    end of its train and validation parts, then the parts concatenated."""
    purge = dataset.lookahead_bars if purge_bars is None else purge_bars
    parts: tuple[list[Ints], list[Ints], list[Ints]] = ([], [], [])
    for part in dataset.parts:
        m = part.stop - part.start
        first, second = (int(b[0]) for b in _split_bounds(np.array([m]), split))
        ranges = ((0, first - purge), (first, second - purge), (second, m))
        for out, (lo, hi) in zip(parts, ranges, strict=True):
            out.append(np.arange(part.start + lo, part.start + max(lo, hi), dtype=np.int64))
    train, val, test = (np.concatenate(p) if p else np.empty(0, np.int64) for p in parts)
    return train, val, test


def _phase(sink: ProgressSink | None, phase: Phase, message: str) -> None:
    if sink is not None:
        sink.phase(phase, PHASE_SPANS[phase][0], message)


def _stop_if_asked(sink: ProgressSink | None) -> None:
    if sink is not None and sink.should_stop():
        raise TrainingCancelled()


def _load_all(
    request: StartTraining, data_dir: Path | str, sink: ProgressSink | None, warmup: int
) -> list[Bars]:
    symbols = list(request.symbols)
    if len(set(symbols)) != len(symbols):
        raise BadStrategy("a symbol is listed twice", field="symbols")
    lookahead = request.strategy.labels.lookahead_bars
    split = request.strategy.training.split
    least = min_rows_to_split(split, lookahead)
    reason = (
        f"{warmup} warm-up bars, {lookahead} look-ahead bars and {least} labelled rows "
        f"to split {split.train:g}/{split.validation:g}/{split.test:g} with {lookahead}-bar gaps"
    )
    _phase(sink, "loading_data", f"{len(symbols)} symbol(s), {request.timeframe}")
    loaded: list[Bars] = []
    for symbol in symbols:
        _stop_if_asked(sink)
        loaded.append(
            load_ohlcv(
                data_dir,
                symbol,
                request.timeframe,
                request.start_date,
                request.end_date,
                min_rows=warmup + lookahead + least,
                min_rows_reason=reason,
            )
        )
    return loaded


def build_dataset(
    request: StartTraining, data_dir: Path | str, sink: ProgressSink | None = None
) -> Dataset:
    """Load, featurise and label every symbol of the request, then stack them."""
    strategy = request.strategy
    warmup = feature_warmup(strategy)  # checks the strategy before any file is read
    lookahead = strategy.labels.lookahead_bars
    loaded = _load_all(request, data_dir, sink, warmup)
    keep = [slice(warmup, len(bars) - lookahead) for bars in loaded]

    _phase(sink, "computing_features", f"{len(strategy.fuzzy_sets)} fuzzy inputs")
    features: list[npt.NDArray[np.float64]] = []
    names: list[str] = []
    for bars, rows in zip(loaded, keep, strict=True):
        _stop_if_asked(sink)
        matrix, names = compute_features(strategy, bars)
        bad = ~np.isfinite(matrix[rows]).all(axis=1)
        if bad.any():
            line = int(bars.lines[rows][np.argmax(bad)])
            raise BadData(bars.path, "features are not finite after the warm-up", row=line)
        features.append(matrix[rows])

    _phase(sink, "labeling", f"zigzag {strategy.labels.threshold:g} within {lookahead} bars")
    labels: list[Ints] = []
    for bars, rows in zip(loaded, keep, strict=True):
        _stop_if_asked(sink)
        labels.append(zigzag_labels(bars.close, strategy.labels.threshold, lookahead)[rows])

    parts, start = [], 0
    for bars, y in zip(loaded, labels, strict=True):
        stop = start + len(y)
        parts.append(SymbolPart(bars.symbol, bars.path, start, stop, len(bars), bars.fingerprint))
        start = stop
    identity = {
        "version": 1,
        "timeframe": request.timeframe,
        "start_date": str(request.start_date),
        "end_date": str(request.end_date),
        "files": [[bars.symbol, bars.fingerprint] for bars in loaded],
    }
    return Dataset(
        features=np.concatenate(features).astype(np.float32),
        labels=np.concatenate(labels),
        feature_names=tuple(names),
        label_names=LABEL_NAMES,
        timestamps=np.concatenate([b.timestamps[k] for b, k in zip(loaded, keep, strict=True)]),
        symbol_ids=np.concatenate([np.full(len(y), i, np.int64) for i, y in enumerate(labels)]),
        symbols=tuple(bars.symbol for bars in loaded),
        parts=tuple(parts),
        timeframe=request.timeframe,
        warmup_bars=warmup,
        lookahead_bars=lookahead,
        fingerprint=hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest(),
    )
