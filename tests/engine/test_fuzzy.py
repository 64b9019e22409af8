"""Membership functions and the fuzzy feature matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus_contracts.strategy import (
    FuzzySetSpec,
    Gaussian,
    IndicatorSpec,
    Strategy,
    Trapezoidal,
    Triangular,
)
from training_engine.errors import BadStrategy
from training_engine.fuzzy import fuzzify, gaussian, membership, trapezoidal, triangular

X = np.array([-10.0, 0, 2.5, 5, 7.5, 10, 12.5, 15, 20, 30, math.nan])


def test_triangle_peaks_at_b_and_is_zero_outside() -> None:
    mu = triangular(X, 0, 5, 10)
    np.testing.assert_allclose(mu[:-1], [0, 0, 0.5, 1, 0.5, 0, 0, 0, 0, 0])
    assert math.isnan(mu[-1])


def test_trapezoid_plateau_and_slopes() -> None:
    mu = trapezoidal(X, 0, 5, 10, 20)
    np.testing.assert_allclose(mu[:-1], [0, 0, 0.5, 1, 1, 1, 0.75, 0.5, 0, 0])


def test_trapezoid_shoulders_extend_to_the_edges() -> None:
    left = trapezoidal(X, 0, 0, 5, 10)
    np.testing.assert_allclose(left[:-1], [1, 1, 1, 1, 0.5, 0, 0, 0, 0, 0])
    right = trapezoidal(X, 10, 20, 30, 30)
    np.testing.assert_allclose(right[:-1], [0, 0, 0, 0, 0, 0, 0.25, 0.5, 1, 1])
    assert trapezoidal(np.array([1e6]), 10, 20, 30, 30)[0] == 1.0


def test_triangle_with_a_vertical_side_is_a_shoulder() -> None:
    np.testing.assert_allclose(triangular(X, 0, 0, 10)[:-1], [1, 1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0])


def test_gaussian() -> None:
    mu = gaussian(X, 5, 2.5)
    assert mu[3] == 1.0
    assert mu[2] == pytest.approx(math.exp(-0.5))
    assert mu[4] == pytest.approx(math.exp(-0.5))
    assert math.isnan(mu[-1])


@pytest.mark.parametrize(
    "fn",
    [
        lambda: triangular(X, 5, 0, 10),
        lambda: triangular(X, 1, 1, 1),
        lambda: trapezoidal(X, 0, 5, 4, 10),
        lambda: gaussian(X, 0, 0),
    ],
)
def test_malformed_shapes_are_refused(fn: object) -> None:
    assert callable(fn)
    with pytest.raises(BadStrategy):
        fn()


finite = st.floats(-1e6, 1e6)


@given(
    x=st.lists(
        st.one_of(finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf)), min_size=1
    ),
    corners=st.lists(st.floats(-1e4, 1e4), min_size=4, max_size=4, unique=True),
    sigma=st.floats(1e-3, 1e4),
)
def test_memberships_are_always_in_unit_interval(
    x: list[float], corners: list[float], sigma: float
) -> None:
    a, b, c, d = sorted(corners)
    arr = np.array(x)
    for mu in (triangular(arr, a, b, c), trapezoidal(arr, a, b, c, d), gaussian(arr, b, sigma)):
        defined = ~np.isnan(arr)
        assert ((mu[defined] >= 0) & (mu[defined] <= 1)).all()
        assert np.isnan(mu[~defined]).all()


@given(corners=st.lists(st.floats(-1e4, 1e4), min_size=3, max_size=3, unique=True))
def test_triangle_is_one_exactly_at_its_peak(corners: list[float]) -> None:
    a, b, c = sorted(corners)
    assert triangular(np.array([b]), a, b, c)[0] == 1.0


def _strategy(*fuzzy: FuzzySetSpec) -> Strategy:
    return Strategy(
        indicators=[
            IndicatorSpec(id="rsi_14", type="rsi", params={"period": 14}),
            IndicatorSpec(id="macd", type="macd"),
        ],
        fuzzy_sets=list(fuzzy),
    )


OUTPUTS = {
    "rsi_14": {"value": np.array([10.0, 50, 90])},
    "macd": {
        "histogram_pct": np.array([-1.0, 0, 1]),
        "macd": np.array([0.0, 0, 0]),
        "signal": np.array([5.0, 6, 7]),
        "histogram": np.array([0.0, 0, 0]),
    },
}


def test_fuzzify_names_order_and_values() -> None:
    strategy = _strategy(
        FuzzySetSpec(
            indicator="rsi_14",
            sets={"low": Trapezoidal(a=0, b=0, c=20, d=40), "high": Triangular(a=60, b=90, c=100)},
        ),
        FuzzySetSpec(indicator="macd.signal", sets={"mid": Gaussian(mean=6, sigma=1)}),
        FuzzySetSpec(indicator="macd", sets={"up": Triangular(a=0, b=1, c=2)}),
    )
    features, names = fuzzify(strategy, OUTPUTS)
    assert names == ["rsi_14_low", "rsi_14_high", "macd_signal_mid", "macd_up"]
    assert features.dtype == np.float64
    e = math.exp(-0.5)
    expected = np.array([[1, 0, e, 0], [0, 0, 1, 0], [0, 1, e, 1]], dtype=np.float64)
    np.testing.assert_allclose(features, expected)


def test_membership_dispatch() -> None:
    x = np.array([5.0])
    assert membership(x, Triangular(a=0, b=5, c=10))[0] == 1
    assert membership(x, Trapezoidal(a=0, b=1, c=2, d=10))[0] == pytest.approx(5 / 8)
    assert membership(x, Gaussian(mean=5, sigma=1))[0] == 1


@pytest.mark.parametrize(
    ("fuzzy", "problem"),
    [
        (
            FuzzySetSpec(indicator="ema_9", sets={"x": Gaussian(mean=0, sigma=1)}),
            "names no indicator",
        ),
        (
            FuzzySetSpec(indicator="macd.upper", sets={"x": Gaussian(mean=0, sigma=1)}),
            "no output 'upper'",
        ),
        (
            FuzzySetSpec(indicator="rsi_14", sets={"x": Triangular(a=3, b=2, c=1)}),
            "rsi_14_x: triangle",
        ),
    ],
)
def test_fuzzify_refuses_bad_sets(fuzzy: FuzzySetSpec, problem: str) -> None:
    with pytest.raises(BadStrategy, match=problem):
        fuzzify(_strategy(fuzzy), OUTPUTS)


def test_repeated_feature_names_are_refused() -> None:
    same = FuzzySetSpec(indicator="rsi_14", sets={"low": Gaussian(mean=0, sigma=1)})
    with pytest.raises(BadStrategy, match="feature names repeat: rsi_14_low"):
        fuzzify(_strategy(same, same), OUTPUTS)
