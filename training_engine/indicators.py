"""Technical indicators, vectorised with numpy, following the textbook definitions.

Every function returns arrays as long as its input, NaN until the indicator is
defined (the warm-up). Conventions, where the textbooks leave a choice:

- EMA: alpha = 2/(n+1), seeded with the SMA of the first n values.
- Wilder smoothing (RSI, ATR, ADX): seeded with the simple average of the first
  n values, then ``(prev*(n-1) + x)/n``. True range needs the previous close,
  so it starts at bar 1 and ATR/+DI/−DI are first defined at bar n, ADX at bar
  2n−1 (as in Wilder 1978 and TA-Lib).
- Degenerate windows (no movement at all): RSI 50, stochastic %K 50,
  Williams %R −50, Bollinger %b 0.5 (a standard deviation below 1e-12 of the
  mean counts as none), +DI/−DI/DX 0.
- Bollinger bands use the population standard deviation; bandwidth is
  ``(upper − lower)/middle`` (a fraction, as Bollinger defines it).
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from bus_contracts.errors import ContractError
from bus_contracts.strategy import (
    INDICATOR_OUTPUTS,
    IndicatorSpec,
)
from bus_contracts.validation import check_params
from bus_contracts.validation import resolved_params as contract_resolved_params
from training_engine.data import Bars
from training_engine.errors import BadStrategy

Floats = npt.NDArray[np.float64]


def _nan(n: int) -> Floats:
    return np.full(n, np.nan)


def _rolling(x: Floats, n: int, how: str) -> Floats:
    """``mean``, ``std`` (population), ``max`` or ``min`` over each window of n bars."""
    out = _nan(len(x))
    if len(x) >= n:
        out[n - 1 :] = getattr(sliding_window_view(x, n), how)(axis=1)
    return out


def sma(x: Floats, n: int) -> Floats:
    return _rolling(x, n, "mean")


def _recursive(x: Floats, n: int, alpha: float) -> Floats:
    """``y = y_prev + alpha*(x - y_prev)``, seeded with the mean of the first n
    values after any leading NaN."""
    out = _nan(len(x))
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) == 0 or len(x) - valid[0] < n:
        return out
    seed_at = int(valid[0]) + n - 1
    seed = float(x[valid[0] : seed_at + 1].mean())
    out[seed_at:] = list(
        accumulate(x[seed_at + 1 :].tolist(), lambda y, v: y + alpha * (v - y), initial=seed)
    )
    return out


def ema(x: Floats, n: int) -> Floats:
    return _recursive(x, n, 2.0 / (n + 1))


def wilder(x: Floats, n: int) -> Floats:
    return _recursive(x, n, 1.0 / n)


def _ratio(num: Floats, den: Floats, scale: float, when_zero: float) -> Floats:
    """``scale*num/den``, ``when_zero`` where ``den`` is 0, NaN where either is NaN."""
    safe = np.where(den == 0, 1.0, den)
    out = np.where(den == 0, when_zero, scale * num / safe)
    return np.where(np.isnan(num) | np.isnan(den), np.nan, out)


def rsi(close: Floats, n: int) -> Floats:
    move = np.concatenate([[np.nan], np.diff(close)])
    gain = wilder(np.maximum(move, 0.0), n)
    loss = wilder(np.maximum(-move, 0.0), n)
    return _ratio(gain, gain + loss, 100.0, 50.0)


def macd(close: Floats, fast: int, slow: int, signal: int) -> tuple[Floats, Floats, Floats]:
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def roc(close: Floats, n: int) -> Floats:
    out = _nan(len(close))
    out[n:] = 100.0 * (close[n:] / close[:-n] - 1.0)
    return out


def true_range(high: Floats, low: Floats, close: Floats) -> Floats:
    prev = np.concatenate([[np.nan], close[:-1]])
    tr: Floats = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    return tr


def atr(high: Floats, low: Floats, close: Floats, n: int) -> Floats:
    return wilder(true_range(high, low, close), n)


def adx(high: Floats, low: Floats, close: Floats, n: int) -> tuple[Floats, Floats, Floats]:
    """(ADX, +DI, −DI) after Wilder (1978)."""
    up = np.concatenate([[np.nan], np.diff(high)])
    down = np.concatenate([[np.nan], -np.diff(low)])
    plus_dm = np.where(up > down, np.maximum(up, 0.0), 0.0)
    minus_dm = np.where(down > up, np.maximum(down, 0.0), 0.0)
    plus_dm[0] = minus_dm[0] = np.nan  # no previous bar
    tr = atr(high, low, close, n)
    plus_di = _ratio(wilder(plus_dm, n), tr, 100.0, 0.0)
    minus_di = _ratio(wilder(minus_dm, n), tr, 100.0, 0.0)
    dx = _ratio(np.abs(plus_di - minus_di), plus_di + minus_di, 100.0, 0.0)
    return wilder(dx, n), plus_di, minus_di


def bbands(close: Floats, n: int, k: float) -> dict[str, Floats]:
    middle = sma(close, n)
    std = _rolling(close, n, "std")
    std[std <= 1e-12 * np.abs(middle)] = 0.0  # a flat window, up to rounding
    upper, lower = middle + k * std, middle - k * std
    return {
        "percent_b": _ratio(close - lower, upper - lower, 1.0, 0.5),
        "bandwidth": (upper - lower) / middle,
        "upper": upper,
        "middle": middle,
        "lower": lower,
    }


def stochastic(
    high: Floats, low: Floats, close: Floats, *, k_period: int, d_period: int, smooth: int
) -> tuple[Floats, Floats]:
    """(slow %K, %D): raw %K over k_period, smoothed by an SMA of ``smooth``."""
    hh, ll = _rolling(high, k_period, "max"), _rolling(low, k_period, "min")
    raw = _ratio(close - ll, hh - ll, 100.0, 50.0)
    k = sma(raw, smooth)
    return k, sma(k, d_period)


def williams_r(high: Floats, low: Floats, close: Floats, n: int) -> Floats:
    hh, ll = _rolling(high, n, "max"), _rolling(low, n, "min")
    return _ratio(hh - close, hh - ll, -100.0, -50.0)


def resolved_params(spec: IndicatorSpec) -> dict[str, float]:
    """The spec's parameters with defaults filled in, checked by the contract's rules
    (the engine may be handed a request that never went through the codec)."""
    try:
        check_params(spec, f"strategy.indicators.{spec.id}")
    except ContractError as exc:
        raise BadStrategy(f"{spec.id}: {exc.problem}", field=exc.field) from None
    return {name: float(value) for name, value in contract_resolved_params(spec).items()}


def warmup_bars(spec: IndicatorSpec) -> int:
    """Bars before every output of the indicator is defined."""
    p = {name: int(value) for name, value in resolved_params(spec).items()}
    match spec.type:
        case "rsi" | "roc" | "atr":
            return p["period"]
        case "adx":
            return 2 * p["period"] - 1
        case "macd":
            return p["slow"] + p["signal"] - 2
        case "stochastic":
            return p["k_period"] + p["smooth"] + p["d_period"] - 3
        case _:  # sma, ema, bbands, williams_r
            return p["period"] - 1


def compute_indicator(spec: IndicatorSpec, bars: Bars) -> dict[str, Floats]:
    """Every output of ``strategy.INDICATOR_OUTPUTS[spec.type]``, in that order."""
    p = resolved_params(spec)
    n = int(p.get("period", 0))
    h, lo, c = bars.high, bars.low, bars.close
    out: dict[str, Floats]
    match spec.type:
        case "rsi":
            out = {"value": rsi(c, n)}
        case "macd":
            line, sig, hist = macd(c, int(p["fast"]), int(p["slow"]), int(p["signal"]))
            out = {
                "histogram_pct": 100.0 * hist / c,
                "macd": line,
                "signal": sig,
                "histogram": hist,
            }
        case "roc":
            out = {"value": roc(c, n)}
        case "adx":
            adx_, plus_di, minus_di = adx(h, lo, c, n)
            out = {"adx": adx_, "plus_di": plus_di, "minus_di": minus_di}
        case "atr":
            value = atr(h, lo, c, n)
            out = {"pct": 100.0 * value / c, "value": value}
        case "sma" | "ema":
            ma = sma(c, n) if spec.type == "sma" else ema(c, n)
            out = {"distance_pct": 100.0 * (c / ma - 1.0), "value": ma}
        case "bbands":
            out = bbands(c, n, p["stddev"])
        case "stochastic":
            k, d = stochastic(
                h,
                lo,
                c,
                k_period=int(p["k_period"]),
                d_period=int(p["d_period"]),
                smooth=int(p["smooth"]),
            )
            out = {"k": k, "d": d}
        case "williams_r":
            out = {"value": williams_r(h, lo, c, n)}
    return {name: out[name] for name in INDICATOR_OUTPUTS[spec.type]}
