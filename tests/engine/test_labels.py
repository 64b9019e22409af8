"""ZigZag labels on hand-built series and against a naive scan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training_engine.labels import BUY, HOLD, LABEL_NAMES, SELL, UNLABELED, zigzag_labels

U = UNLABELED


def naive(close: list[float], threshold: float, lookahead: int) -> list[int]:
    out = []
    for t, base in enumerate(close):
        if t + lookahead >= len(close):
            out.append(UNLABELED)
            continue
        label = HOLD
        for k in range(1, lookahead + 1):
            if close[t + k] >= base * (1 + threshold):
                label = BUY
                break
            if close[t + k] <= base * (1 - threshold):
                label = SELL
                break
        out.append(label)
    return out


def test_label_map_is_fixed() -> None:
    assert LABEL_NAMES == ("BUY", "HOLD", "SELL")
    assert (BUY, HOLD, SELL, UNLABELED) == (0, 1, 2, -1)


def test_hand_built_series() -> None:
    close = [100, 101, 103.5, 99, 96, 97, 100, 100.5, 99.5, 101, 100]
    # t0: 103.5 >= 103 at k=2 before any <= 97   -> BUY
    # t1: 96 <= 97.97 at k=3, 104.03 never       -> SELL
    # t2: 99 <= 100.395 at k=1                   -> SELL
    # t3: 96 <= 96.03 at k=1                     -> SELL
    # t4: 100 >= 98.88 at k=2                    -> BUY
    # t5: 100 >= 99.91 at k=1                    -> BUY
    # t6, t7: stay within +-3 % for 3 bars       -> HOLD
    # t8..t10: fewer than 3 bars ahead           -> no label
    labels = zigzag_labels(np.array(close), 0.03, 3)
    assert labels.tolist() == [BUY, SELL, SELL, SELL, BUY, BUY, HOLD, HOLD, U, U, U]
    assert labels.dtype == np.int64


def test_reaching_the_barrier_exactly_counts() -> None:
    assert zigzag_labels(np.array([100.0, 150.0]), 0.5, 1).tolist() == [BUY, U]
    assert zigzag_labels(np.array([100.0, 50.0]), 0.5, 1).tolist() == [SELL, U]


def test_the_first_barrier_wins() -> None:
    up_first = zigzag_labels(np.array([100.0, 100, 106, 90]), 0.05, 3)
    down_first = zigzag_labels(np.array([100.0, 100, 94, 110]), 0.05, 3)
    assert up_first[0] == BUY
    assert down_first[0] == SELL


def test_the_tail_is_never_guessed() -> None:
    # the last bars jump far beyond the barrier, but have no full window
    labels = zigzag_labels(np.array([100.0] * 10 + [200.0]), 0.1, 4)
    assert labels.tolist() == [HOLD] * 6 + [BUY] + [U] * 4


def test_series_shorter_than_the_window() -> None:
    assert zigzag_labels(np.array([1.0, 2.0]), 0.1, 5).tolist() == [U, U]
    assert zigzag_labels(np.array([], dtype=float), 0.1, 5).tolist() == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threshold"):
        zigzag_labels(np.array([1.0]), 0.0, 5)
    with pytest.raises(ValueError, match="lookahead"):
        zigzag_labels(np.array([1.0]), 0.1, 0)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 120),
    threshold=st.floats(0.001, 0.2),
    lookahead=st.integers(1, 30),
)
def test_matches_a_naive_scan(seed: int, n: int, threshold: float, lookahead: int) -> None:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    assert zigzag_labels(close, threshold, lookahead).tolist() == naive(
        close.tolist(), threshold, lookahead
    )
