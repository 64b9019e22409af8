"""Indicators against hand-worked numbers and naive loop implementations of the
textbook formulas (written here from the definitions, not from the code)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus_contracts.strategy import INDICATOR_OUTPUTS, INDICATOR_PARAMS, IndicatorSpec
from training_engine import indicators as ind
from training_engine.data import Bars, load_ohlcv
from training_engine.errors import BadStrategy

NAN = math.nan
F = npt.NDArray[np.float64]


def close_to(actual: F, expected: list[float], tol: float = 1e-9) -> None:
    np.testing.assert_allclose(actual, np.array(expected), rtol=tol, atol=tol, equal_nan=True)


# ---- naive references -------------------------------------------------------


def ref_sma(x: list[float], n: int) -> list[float]:
    return [NAN if i < n - 1 else sum(x[i - n + 1 : i + 1]) / n for i in range(len(x))]


def ref_smooth(x: list[float], n: int, alpha: float) -> list[float]:
    """Seed with the mean of the first n values after the leading NaNs."""
    out = [NAN] * len(x)
    start = next(i for i, v in enumerate(x) if not math.isnan(v))
    prev = NAN
    for i in range(start + n - 1, len(x)):
        if i == start + n - 1:
            prev = sum(x[start : start + n]) / n
        else:
            prev = alpha * x[i] + (1 - alpha) * prev
        out[i] = prev
    return out


def ref_ema(x: list[float], n: int) -> list[float]:
    return ref_smooth(x, n, 2 / (n + 1))


def ref_wilder(x: list[float], n: int) -> list[float]:
    out = [NAN] * len(x)
    start = next(i for i, v in enumerate(x) if not math.isnan(v))
    for i in range(start + n - 1, len(x)):
        if i == start + n - 1:
            out[i] = sum(x[start : start + n]) / n
        else:
            out[i] = (out[i - 1] * (n - 1) + x[i]) / n
    return out


def ref_rsi(c: list[float], n: int) -> list[float]:
    gains = [NAN] + [max(c[i] - c[i - 1], 0.0) for i in range(1, len(c))]
    losses = [NAN] + [max(c[i - 1] - c[i], 0.0) for i in range(1, len(c))]
    ag, al = ref_wilder(gains, n), ref_wilder(losses, n)
    out = []
    for g, lo in zip(ag, al, strict=True):
        if math.isnan(g):
            out.append(NAN)
        elif lo == 0:
            out.append(100.0 if g > 0 else 50.0)
        else:
            out.append(100 - 100 / (1 + g / lo))
    return out


def ref_tr(h: list[float], lo: list[float], c: list[float]) -> list[float]:
    return [NAN] + [
        max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(c))
    ]


def ref_adx(h: list[float], lo: list[float], c: list[float], n: int) -> list[list[float]]:
    pdm, mdm = [NAN], [NAN]
    for i in range(1, len(c)):
        up, down = h[i] - h[i - 1], lo[i - 1] - lo[i]
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
    atr = ref_wilder(ref_tr(h, lo, c), n)
    sp, sm = ref_wilder(pdm, n), ref_wilder(mdm, n)
    pdi = [
        NAN if math.isnan(a) else (100 * p / a if a else 0.0) for p, a in zip(sp, atr, strict=True)
    ]
    mdi = [
        NAN if math.isnan(a) else (100 * m / a if a else 0.0) for m, a in zip(sm, atr, strict=True)
    ]
    dx = [
        NAN if math.isnan(p) else (100 * abs(p - m) / (p + m) if p + m else 0.0)
        for p, m in zip(pdi, mdi, strict=True)
    ]
    return [ref_wilder(dx, n), pdi, mdi]


def ref_window(x: list[float], n: int, fn: object) -> list[float]:
    assert callable(fn)
    return [NAN if i < n - 1 else fn(x[i - n + 1 : i + 1]) for i in range(len(x))]


def ref_bbands(c: list[float], n: int, k: float) -> dict[str, list[float]]:
    mid = ref_sma(c, n)
    std = ref_window(c, n, lambda w: math.sqrt(sum((v - sum(w) / n) ** 2 for v in w) / n))
    std = [0.0 if s <= 1e-12 * m else s for s, m in zip(std, mid, strict=True)]  # flat window
    up = [m + k * s for m, s in zip(mid, std, strict=True)]
    dn = [m - k * s for m, s in zip(mid, std, strict=True)]
    pb = [
        (x - d) / (u - d) if u != d else (NAN if math.isnan(u) else 0.5)
        for x, u, d in zip(c, up, dn, strict=True)
    ]
    return {
        "percent_b": pb,
        "bandwidth": [(u - d) / m for u, d, m in zip(up, dn, mid, strict=True)],
        "upper": up,
        "middle": mid,
        "lower": dn,
    }


def ref_stoch(
    h: list[float], lo: list[float], c: list[float], k: int, d: int, s: int
) -> list[list[float]]:
    hh, ll = ref_window(h, k, max), ref_window(lo, k, min)
    raw = [
        NAN if math.isnan(a) else (100 * (x - b) / (a - b) if a != b else 50.0)
        for x, a, b in zip(c, hh, ll, strict=True)
    ]
    slow = ref_window(raw, s, lambda w: sum(w) / s)
    return [slow, ref_window(slow, d, lambda w: sum(w) / d)]


def ref_willr(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    hh, ll = ref_window(h, n, max), ref_window(lo, n, min)
    return [
        NAN if math.isnan(a) else (-100 * (a - x) / (a - b) if a != b else -50.0)
        for x, a, b in zip(c, hh, ll, strict=True)
    ]


# ---- data -------------------------------------------------------------------


def make_bars(
    close: list[float], high: list[float] | None = None, low: list[float] | None = None
) -> Bars:
    c = np.array(close, dtype=np.float64)
    h = c.copy() if high is None else np.array(high, dtype=np.float64)
    lo = c.copy() if low is None else np.array(low, dtype=np.float64)
    n = len(c)
    return Bars(
        symbol="T",
        timeframe="1d",
        path=Path("t.csv"),
        timestamps=np.arange(n).astype("datetime64[D]").astype("datetime64[s]"),
        open=c.copy(),
        high=h,
        low=lo,
        close=c,
        volume=np.ones(n),
        lines=np.arange(2, n + 2, dtype=np.int64),
        fingerprint="",
    )


def random_bars(n: int, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    spread = close * rng.uniform(0, 0.03, n)
    high = close + spread * rng.uniform(0, 1, n)
    low = close - spread * rng.uniform(0, 1, n)
    # a flat stretch exercises the degenerate windows
    close[40:60], high[40:60], low[40:60] = close[40], close[40], close[40]
    return make_bars(close.tolist(), high.tolist(), low.tolist())


@pytest.fixture(scope="module", params=["random", "spx"])
def bars(request: pytest.FixtureRequest) -> Bars:
    if request.param == "random":
        return random_bars(400, 7)
    spx = load_ohlcv(Path(__file__).resolve().parents[2] / "data", "SPX", "1d")
    return make_bars(spx.close[:700].tolist(), spx.high[:700].tolist(), spx.low[:700].tolist())


def spec(kind: str, **params: float) -> IndicatorSpec:
    return IndicatorSpec(id="x", type=kind, params=params)  # type: ignore[arg-type]


def check(actual: F, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.array(expected), rtol=1e-6, atol=1e-9, equal_nan=True)


# ---- against the references -------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 14, 50])
def test_sma_ema_roc_match_reference(bars: Bars, n: int) -> None:
    c = bars.close.tolist()
    check(ind.sma(bars.close, n), ref_sma(c, n))
    check(ind.ema(bars.close, n), ref_ema(c, n))
    out = ind.compute_indicator(spec("roc", period=n), bars)["value"]
    check(out, [NAN] * n + [100 * (c[i] / c[i - n] - 1) for i in range(n, len(c))])
    sma = ind.compute_indicator(spec("sma", period=n), bars)
    check(sma["distance_pct"], [100 * (x / m - 1) for x, m in zip(c, ref_sma(c, n), strict=True)])


@pytest.mark.parametrize("n", [2, 14, 30])
def test_rsi_atr_adx_match_reference(bars: Bars, n: int) -> None:
    h, lo, c = bars.high.tolist(), bars.low.tolist(), bars.close.tolist()
    check(ind.compute_indicator(spec("rsi", period=n), bars)["value"], ref_rsi(c, n))
    atr = ind.compute_indicator(spec("atr", period=n), bars)
    check(atr["value"], ref_wilder(ref_tr(h, lo, c), n))
    check(
        atr["pct"], [100 * a / x for a, x in zip(ref_wilder(ref_tr(h, lo, c), n), c, strict=True)]
    )
    out = ind.compute_indicator(spec("adx", period=n), bars)
    for name, expected in zip(("adx", "plus_di", "minus_di"), ref_adx(h, lo, c, n), strict=True):
        check(out[name], expected)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 4), (2, 3, 2)])
def test_macd_matches_reference(bars: Bars, fast: int, slow: int, signal: int) -> None:
    c = bars.close.tolist()
    line = [f - s for f, s in zip(ref_ema(c, fast), ref_ema(c, slow), strict=True)]
    sig = ref_ema(line, signal)
    hist = [a - b for a, b in zip(line, sig, strict=True)]
    out = ind.compute_indicator(spec("macd", fast=fast, slow=slow, signal=signal), bars)
    check(out["macd"], line)
    check(out["signal"], sig)
    check(out["histogram"], hist)
    check(out["histogram_pct"], [100 * x / y for x, y in zip(hist, c, strict=True)])


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (5, 1.5), (2, 3.0)])
def test_bbands_match_reference(bars: Bars, n: int, k: float) -> None:
    out = ind.compute_indicator(spec("bbands", period=n, stddev=k), bars)
    for name, expected in ref_bbands(bars.close.tolist(), n, k).items():
        check(out[name], expected)


@pytest.mark.parametrize(("k", "d", "s"), [(14, 3, 3), (5, 2, 1), (1, 1, 1)])
def test_stochastic_and_williams_match_reference(bars: Bars, k: int, d: int, s: int) -> None:
    h, lo, c = bars.high.tolist(), bars.low.tolist(), bars.close.tolist()
    out = ind.compute_indicator(spec("stochastic", k_period=k, d_period=d, smooth=s), bars)
    slow, dline = ref_stoch(h, lo, c, k, d, s)
    check(out["k"], slow)
    check(out["d"], dline)
    check(
        ind.compute_indicator(spec("williams_r", period=k), bars)["value"], ref_willr(h, lo, c, k)
    )


# ---- hand-worked ------------------------------------------------------------

X = [2.0, 4, 6, 8, 12, 14, 16, 18, 20, 10]
H = [10.0, 12, 11, 15, 13]
L = [9.0, 10, 8, 12, 11]
C = [9.5, 11, 9, 14, 12]


def test_hand_worked_sma_ema_roc() -> None:
    x = np.array(X)
    close_to(ind.sma(x, 3), [NAN, NAN, 4, 6, 26 / 3, 34 / 3, 14, 16, 18, 16])
    close_to(ind.ema(x, 3), [NAN, NAN, 4, 6, 9, 11.5, 13.75, 15.875, 17.9375, 13.96875])
    roc = ind.compute_indicator(spec("roc", period=2), make_bars(X))["value"]
    close_to(roc, [NAN, NAN, 200, 100, 100, 75, 100 / 3, 400 / 14, 25, -400 / 9])


def test_hand_worked_macd() -> None:
    out = ind.compute_indicator(spec("macd", fast=2, slow=3, signal=2), make_bars(X[:6]))
    close_to(out["macd"], [NAN, NAN, 1, 1, 4 / 3, 23 / 18])
    close_to(out["signal"], [NAN, NAN, NAN, 1, 11 / 9, 34 / 27])
    close_to(out["histogram"], [NAN, NAN, NAN, 0, 1 / 9, 1 / 54])


def test_hand_worked_rsi_small() -> None:
    out = ind.compute_indicator(spec("rsi", period=2), make_bars([10, 11, 10, 12, 12, 9]))
    close_to(out["value"], [NAN, NAN, 50, 250 / 3, 250 / 3, 50 / 3])


def test_rsi_on_the_classic_wilder_worksheet() -> None:
    """The 14-day RSI example StockCharts publishes (first value 70.53)."""
    closes = [
        44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433,
        46.0826, 45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116,
        46.2222, 45.6439, 46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288,
        44.1783, 44.2181, 44.5672, 43.4205, 42.6628, 43.1314,
    ]  # fmt: skip
    expected = [
        70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71,
        50.42, 39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
    ]  # fmt: skip
    out = ind.compute_indicator(spec("rsi", period=14), make_bars(closes))["value"]
    assert np.isnan(out[:14]).all()
    np.testing.assert_allclose(out[14:], expected, atol=0.005)


def test_hand_worked_atr_adx() -> None:
    bars = make_bars(C, H, L)  # true ranges 2.5, 3, 6, 3 from bar 1
    atr = ind.compute_indicator(spec("atr", period=2), bars)["value"]
    close_to(atr, [NAN, NAN, 2.75, 4.375, 3.6875])
    out = ind.compute_indicator(spec("adx", period=2), bars)
    close_to(out["plus_di"], [NAN, NAN, 100 / 2.75, 400 / 7, 2000 / 59])
    close_to(out["minus_di"], [NAN, NAN, 100 / 2.75, 80 / 7, 1200 / 59])
    close_to(out["adx"], [NAN, NAN, NAN, 100 / 3, 175 / 6])  # DX 0, 66.67, 25


def test_hand_worked_bbands() -> None:
    out = ind.compute_indicator(spec("bbands", period=3, stddev=2), make_bars(X[:5]))
    s2, s4 = math.sqrt(8 / 3), math.sqrt(56) / 3  # population std of (2,4,6) and (6,8,12)
    close_to(out["middle"], [NAN, NAN, 4, 6, 26 / 3])
    close_to(out["upper"], [NAN, NAN, 4 + 2 * s2, 6 + 2 * s2, 26 / 3 + 2 * s4])
    close_to(
        out["percent_b"],
        [NAN, NAN, 0.5 + 0.5 / s2, 0.5 + 0.5 / s2, (12 - 26 / 3 + 2 * s4) / (4 * s4)],
    )
    close_to(out["bandwidth"], [NAN, NAN, s2, 4 * s2 / 6, 4 * s4 / (26 / 3)])


def test_hand_worked_stochastic_and_williams() -> None:
    bars = make_bars(C, H, L)
    fast = ind.compute_indicator(spec("stochastic", k_period=3, d_period=2, smooth=1), bars)
    close_to(fast["k"], [NAN, NAN, 25, 600 / 7, 400 / 7])
    close_to(fast["d"], [NAN, NAN, NAN, 775 / 14, 500 / 7])
    slow = ind.compute_indicator(spec("stochastic", k_period=3, d_period=2, smooth=2), bars)
    close_to(slow["k"], [NAN, NAN, NAN, 775 / 14, 500 / 7])
    close_to(slow["d"], [NAN, NAN, NAN, NAN, 1775 / 28])
    willr = ind.compute_indicator(
        spec("williams_r", period=3),
        make_bars([9, 10, 11, 10, 9], [10, 11, 12, 11, 10], [8, 9, 10, 9, 8]),
    )
    close_to(willr["value"], [NAN, NAN, -25, -200 / 3, -75])


def test_flat_prices_give_the_documented_neutral_values() -> None:
    bars = make_bars([5.0] * 40)
    assert ind.compute_indicator(spec("rsi"), bars)["value"][-1] == 50
    assert ind.compute_indicator(spec("stochastic"), bars)["k"][-1] == 50
    assert ind.compute_indicator(spec("williams_r"), bars)["value"][-1] == -50
    assert ind.compute_indicator(spec("bbands"), bars)["percent_b"][-1] == 0.5
    assert ind.compute_indicator(spec("adx", period=5), bars)["adx"][-1] == 0


# ---- outputs, warm-up and parameters ----------------------------------------

KINDS = sorted(INDICATOR_PARAMS)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    periods=st.lists(st.integers(1, 12), min_size=3, max_size=3),
    seed=st.integers(0, 1000),
)
def test_warmup_is_where_every_output_starts(kind: str, periods: list[int], seed: int) -> None:
    params: dict[str, float] = {}
    for (name, (_, lowest, _)), value in zip(INDICATOR_PARAMS[kind].items(), periods, strict=False):
        params[name] = max(value, lowest) if name != "stddev" else 2.0
    if kind == "macd":
        params["slow"] = params["fast"] + params["slow"]
    s = spec(kind, **params)
    out = ind.compute_indicator(s, random_bars(80, seed))
    assert list(out) == list(INDICATOR_OUTPUTS[kind])
    w = ind.warmup_bars(s)
    joined = np.column_stack(list(out.values()))
    assert np.isfinite(joined[w:]).all()
    assert not np.isfinite(joined[w - 1]).all() if w > 0 else True


def test_bounded_outputs_stay_in_their_range(bars: Bars) -> None:
    rsi = ind.compute_indicator(spec("rsi"), bars)["value"][14:]
    stoch = ind.compute_indicator(spec("stochastic"), bars)
    willr = ind.compute_indicator(spec("williams_r"), bars)["value"][13:]
    adx = ind.compute_indicator(spec("adx"), bars)["adx"][27:]
    assert ((rsi >= 0) & (rsi <= 100)).all()
    assert ((stoch["k"][15:] >= 0) & (stoch["k"][15:] <= 100)).all()
    assert ((willr >= -100) & (willr <= 0)).all()
    assert ((adx >= 0) & (adx <= 100)).all()


def test_defaults_fill_missing_parameters() -> None:
    assert ind.resolved_params(spec("macd")) == {"fast": 12, "slow": 26, "signal": 9}
    assert ind.warmup_bars(spec("macd")) == 33
    assert ind.warmup_bars(spec("adx")) == 27


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("rsi", {"length": 14}, "unknown parameter for rsi; allowed: period"),
        ("rsi", {"period": 14.5}, "must be a whole number"),
        ("sma", {"period": 0}, "must be between 1 and 500"),
        ("macd", {"fast": 26, "slow": 12}, "must be less than slow"),
    ],
)
def test_bad_parameters_are_refused(kind: str, params: dict[str, float], problem: str) -> None:
    with pytest.raises(BadStrategy, match=problem):
        ind.compute_indicator(spec(kind, **params), make_bars([1.0] * 50))


def test_short_series_are_all_warm_up() -> None:
    out = ind.compute_indicator(spec("macd"), make_bars([1.0, 2.0, 3.0]))
    assert all(np.isnan(v).all() for v in out.values())
