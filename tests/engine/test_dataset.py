"""From a request to the stacked, labelled dataset and its chronological split."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bus_contracts.messages.common import Phase
from bus_contracts.messages.start import StartTraining
from bus_contracts.strategy import SplitSpec, Strategy, TrainingSpec, ZigZagLabels
from training_engine.data import load_ohlcv
from training_engine.dataset import (
    Dataset,
    build_dataset,
    compute_features,
    min_rows_to_split,
    split_indices,
)
from training_engine.errors import BadData, BadStrategy, DataNotFound, TrainingCancelled
from training_engine.labels import BUY, HOLD, SELL
from training_engine.progress import PHASE_SPANS

DATA = Path(__file__).resolve().parents[2] / "data"


@dataclass
class Sink:
    """Records phases; answers ``should_stop`` with True from call ``stop_at`` on."""

    stop_at: int | None = None
    phases: list[tuple[Phase, float, str]] = field(default_factory=list)
    checks: int = 0

    def phase(self, phase: Phase, percent: float, message: str = "") -> None:
        self.phases.append((phase, percent, message))

    def batch(self, **kwargs: Any) -> None:
        raise AssertionError("no batches while building a dataset")

    def epoch(self, **kwargs: Any) -> None:
        raise AssertionError("no epochs while building a dataset")

    def batch_size_reduced(self, **kwargs: Any) -> None:
        raise AssertionError("no batches while building a dataset")

    def should_stop(self) -> bool:
        self.checks += 1
        return self.stop_at is not None and self.checks >= self.stop_at


def request(*symbols: str, **kw: Any) -> StartTraining:
    return StartTraining(symbols=list(symbols), timeframe="1d", **kw)


@pytest.fixture(scope="module")
def two() -> Dataset:
    return build_dataset(request("SPX", "IXIC"), DATA, None)


def naive_label(close: list[float], t: int, threshold: float, lookahead: int) -> int:
    for k in range(1, lookahead + 1):
        if close[t + k] >= close[t] * (1 + threshold):
            return BUY
        if close[t + k] <= close[t] * (1 - threshold):
            return SELL
    return HOLD


def test_every_row_belongs_to_its_own_symbol(two: Dataset) -> None:
    """Each row's label and features come from that row's own symbol at that row's time."""
    assert two.symbols == ("SPX", "IXIC")
    strategy = Strategy()
    th, la = strategy.labels.threshold, strategy.labels.lookahead_bars
    for sid, symbol in enumerate(two.symbols):
        bars = load_ohlcv(DATA, symbol, "1d")
        features, _ = compute_features(strategy, bars)
        close = bars.close.tolist()
        rows = np.flatnonzero(two.symbol_ids == sid)
        at = np.searchsorted(bars.timestamps, two.timestamps[rows])
        np.testing.assert_array_equal(bars.timestamps[at], two.timestamps[rows])
        assert [naive_label(close, int(t), th, la) for t in at] == two.labels[rows].tolist()
        np.testing.assert_array_equal(two.features[rows], features[at].astype(np.float32))
    # the two indexes share dates, but not labels: a mix-up would have shown above
    spx, ixic = (two.labels[two.symbol_ids == i] for i in (0, 1))
    assert (spx != ixic).any()


def test_shape_types_and_parts(two: Dataset) -> None:
    assert two.features.dtype == np.float32
    assert two.labels.dtype == np.int64
    assert two.features.shape == (len(two), len(two.feature_names))
    assert len(two.feature_names) == 30
    assert two.feature_names[:3] == ("rsi_14_low", "rsi_14_neutral", "rsi_14_high")
    assert two.label_names == ("BUY", "HOLD", "SELL")
    assert np.isfinite(two.features).all()
    assert ((two.features >= 0) & (two.features <= 1)).all()
    assert set(np.unique(two.labels)) == {BUY, HOLD, SELL}
    assert two.warmup_bars == 49  # sma_50
    assert two.lookahead_bars == 20
    assert two.bars_used == {"SPX": 5031, "IXIC": 5031}
    spx, ixic = two.parts
    assert (spx.start, spx.stop, ixic.start, ixic.stop) == (0, 4962, 4962, 9924)
    assert len(two) == 2 * (5031 - 49 - 20)
    for part in two.parts:
        ts = two.timestamps[part.start : part.stop].astype(np.int64)
        assert (np.diff(ts) > 0).all()
    assert two.timestamps[0] == np.datetime64("1999-03-16")  # bar 49 of SPX


def test_split_is_chronological_per_symbol_with_purge_gaps(two: Dataset) -> None:
    train, val, test = split_indices(two, SplitSpec())
    assert len(set(train) | set(val) | set(test)) == len(train) + len(val) + len(test)
    for sid, part in enumerate(two.parts):
        own = [idx[two.symbol_ids[idx] == sid] for idx in (train, val, test)]
        tr, va, te = own
        assert tr[0] == part.start
        assert te[-1] == part.stop - 1  # the test set is the symbol's tail
        assert two.timestamps[tr].max() < two.timestamps[va].min()
        assert two.timestamps[va].max() < two.timestamps[te].min()
        assert va[0] - tr[-1] == two.lookahead_bars + 1  # 20 rows purged between
        assert te[0] - va[-1] == two.lookahead_bars + 1
        m = part.stop - part.start
        assert (len(tr), len(va), len(te)) == (
            int(m * 0.7) - 20,
            int(m * 0.85) - int(m * 0.7) - 20,
            m - int(m * 0.85),
        )
    no_purge = split_indices(two, SplitSpec(), purge_bars=0)
    assert sum(len(p) for p in no_purge) == len(two)


def test_min_rows_to_split_is_the_least_that_works() -> None:
    def works(m: int, s: SplitSpec, purge: int) -> bool:
        a, b = int(m * s.train + 1e-9), int(m * (s.train + s.validation) + 1e-9)
        return a - purge >= 1 and b - a - purge >= 1 and m - b >= 1

    for s in (SplitSpec(), SplitSpec(train=0.5, validation=0.3, test=0.2)):
        for purge in (0, 1, 20):
            least = min_rows_to_split(s, purge)
            assert works(least, s, purge)
            assert not any(works(m, s, purge) for m in range(1, least))
    assert min_rows_to_split(SplitSpec(), 0) == 4
    with pytest.raises(BadStrategy, match="sum to 1"):
        min_rows_to_split(SplitSpec(train=0.5, validation=0.5, test=0.15), 0)


def test_phases_in_order_with_their_percents() -> None:
    sink = Sink()
    build_dataset(request("SPX", "IXIC", start_date=dt.date(2015, 1, 1)), DATA, sink)
    assert [(p, pct) for p, pct, _ in sink.phases] == [
        ("loading_data", PHASE_SPANS["loading_data"][0]),
        ("computing_features", PHASE_SPANS["computing_features"][0]),
        ("labeling", PHASE_SPANS["labeling"][0]),
    ]
    assert sink.checks == 6  # before each symbol in each phase


@pytest.mark.parametrize("stop_at", [1, 2, 3, 6])
def test_stop_between_symbols(stop_at: int) -> None:
    with pytest.raises(TrainingCancelled) as info:
        build_dataset(request("SPX", "IXIC"), DATA, Sink(stop_at=stop_at))
    assert info.value.code == 409


def test_date_range_and_fingerprint(two: Dataset) -> None:
    cut = build_dataset(
        request("SPX", "IXIC", start_date=dt.date(2010, 1, 1), end_date=dt.date(2012, 12, 31)), DATA
    )
    assert cut.timestamps.min() >= np.datetime64("2010-01-01")
    assert cut.timestamps.max() <= np.datetime64("2012-12-31")
    assert cut.bars_used == {"SPX": 754, "IXIC": 754}  # trading days 2010-2012
    assert cut.fingerprint != two.fingerprint
    again = build_dataset(request("SPX", "IXIC"), DATA)
    assert again.fingerprint == two.fingerprint
    np.testing.assert_array_equal(again.features, two.features)
    swapped = build_dataset(request("IXIC", "SPX"), DATA)
    assert swapped.fingerprint != two.fingerprint


def test_too_few_rows_names_file_and_counts() -> None:
    with pytest.raises(BadData) as info:
        build_dataset(request("SPX", start_date=dt.date(2018, 10, 1)), DATA)
    err = info.value
    assert err.path == DATA / "SPX_1d.csv"
    assert err.message == (
        f"{DATA / 'SPX_1d.csv'}: only 63 rows between 2018-10-01 and the end; at least 206 are "
        "needed (49 warm-up bars, 20 look-ahead bars and 137 labelled rows to split "
        "0.7/0.15/0.15 with 20-bar gaps)"
    )


def test_short_strategy_needs_fewer_rows() -> None:
    strategy = Strategy(
        labels=ZigZagLabels(threshold=0.02, lookahead_bars=5),
        training=TrainingSpec(split=SplitSpec(train=0.6, validation=0.2, test=0.2)),
    )
    ds = build_dataset(request("SPX", start_date=dt.date(2018, 8, 1), strategy=strategy), DATA)
    assert ds.bars_used == {"SPX": 105}
    assert len(ds) == 105 - 49 - 5


def test_request_problems() -> None:
    with pytest.raises(BadStrategy, match="listed twice"):
        build_dataset(request("SPX", "SPX"), DATA)
    with pytest.raises(DataNotFound, match="available: IXIC 1d, MSFT 1d, SPX 1d"):
        build_dataset(request("SPX", "AAPL"), DATA)
