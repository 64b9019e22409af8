"""The inline training strategy: indicators, fuzzy sets, labels, model, training.

Every field has a default, so ``{"symbols": ["SPX"], "timeframe": "1d"}`` is a
complete training request. Cross-field rules (parameter names per indicator,
fuzzy sets that refer to a known indicator, a split that sums to one) are
checked by :func:`bus_contracts.validation.validate_start`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bus_contracts import bounds
from bus_contracts.base import Spec

IndicatorType = Literal[
    "rsi", "macd", "roc", "adx", "atr", "sma", "ema", "bbands", "stochastic", "williams_r"
]
Activation = Literal["relu", "gelu", "tanh", "leaky_relu", "silu"]

Ident = Annotated[str, msgspec.Meta(pattern=bounds.IDENT_PATTERN)]
Finite = Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
ParamValue = Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)]

# Parameters each indicator accepts, with (default, lowest, highest). Periods are
# whole bars; multipliers are real numbers.
INDICATOR_PARAMS: dict[str, dict[str, tuple[float, float, float]]] = {
    "rsi": {"period": (14, 2, bounds.MAX_INDICATOR_PERIOD)},
    "macd": {
        "fast": (12, 2, bounds.MAX_INDICATOR_PERIOD),
        "slow": (26, 3, bounds.MAX_INDICATOR_PERIOD),
        "signal": (9, 2, bounds.MAX_INDICATOR_PERIOD),
    },
    "roc": {"period": (10, 1, bounds.MAX_INDICATOR_PERIOD)},
    "adx": {"period": (14, 2, bounds.MAX_INDICATOR_PERIOD)},
    "atr": {"period": (14, 1, bounds.MAX_INDICATOR_PERIOD)},
    "sma": {"period": (20, 1, bounds.MAX_INDICATOR_PERIOD)},
    "ema": {"period": (20, 1, bounds.MAX_INDICATOR_PERIOD)},
    "bbands": {"period": (20, 2, bounds.MAX_INDICATOR_PERIOD), "stddev": (2.0, 0.1, 10.0)},
    "stochastic": {
        "k_period": (14, 1, bounds.MAX_INDICATOR_PERIOD),
        "d_period": (3, 1, bounds.MAX_INDICATOR_PERIOD),
        "smooth": (3, 1, bounds.MAX_INDICATOR_PERIOD),
    },
    "williams_r": {"period": (14, 1, bounds.MAX_INDICATOR_PERIOD)},
}
INTEGER_PARAMS = frozenset({"period", "fast", "slow", "signal", "k_period", "d_period", "smooth"})

# The outputs of each indicator a fuzzy set may refer to as "<id>.<output>"; the
# first is the default when a fuzzy set names the bare id. Price-unit outputs come
# with a scale-free variant (percent of close) so that one set of fuzzy ranges
# fits every symbol.
INDICATOR_OUTPUTS: dict[str, tuple[str, ...]] = {
    "rsi": ("value",),
    "macd": ("histogram_pct", "macd", "signal", "histogram"),
    "roc": ("value",),
    "adx": ("adx", "plus_di", "minus_di"),
    "atr": ("pct", "value"),
    "sma": ("distance_pct", "value"),
    "ema": ("distance_pct", "value"),
    "bbands": ("percent_b", "bandwidth", "upper", "middle", "lower"),
    "stochastic": ("k", "d"),
    "williams_r": ("value",),
}


class IndicatorSpec(Spec, frozen=True, kw_only=True):
    id: Ident
    type: IndicatorType
    params: dict[str, ParamValue] = msgspec.field(default_factory=dict)


class Triangular(Spec, frozen=True, kw_only=True, tag="triangular", tag_field="shape"):
    a: Finite
    b: Finite
    c: Finite


class Trapezoidal(Spec, frozen=True, kw_only=True, tag="trapezoidal", tag_field="shape"):
    a: Finite
    b: Finite
    c: Finite
    d: Finite


class Gaussian(Spec, frozen=True, kw_only=True, tag="gaussian", tag_field="shape"):
    mean: Finite
    sigma: Annotated[float, msgspec.Meta(gt=0, le=1e9)]


MembershipFunction = Triangular | Trapezoidal | Gaussian


class FuzzySetSpec(Spec, frozen=True, kw_only=True):
    """Named membership functions over one indicator output ("rsi_14" or "macd.signal")."""

    indicator: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,47}(\.[a-z_]+)?$")]
    sets: Annotated[
        dict[Ident, MembershipFunction],
        msgspec.Meta(min_length=1, max_length=bounds.MAX_FUZZY_SETS_PER_INDICATOR),
    ]


class ZigZagLabels(Spec, frozen=True, kw_only=True):
    """BUY when price first rises by ``threshold`` within ``lookahead_bars``,
    SELL when it first falls by it, HOLD otherwise."""

    method: Literal["zigzag"] = "zigzag"
    threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.03
    lookahead_bars: Annotated[int, msgspec.Meta(ge=1, le=bounds.MAX_LOOKAHEAD_BARS)] = 20


class ModelSpec(Spec, frozen=True, kw_only=True):
    type: Literal["mlp"] = "mlp"
    hidden_layers: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=bounds.MAX_HIDDEN_UNITS)]],
        msgspec.Meta(min_length=1, max_length=bounds.MAX_HIDDEN_LAYERS),
    ] = msgspec.field(default_factory=lambda: [64, 32])
    activation: Activation = "relu"
    dropout: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.2


class SplitSpec(Spec, frozen=True, kw_only=True):
    """Chronological fractions; they must sum to 1."""

    train: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.70
    validation: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.15
    test: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.15


class EarlyStoppingSpec(Spec, frozen=True, kw_only=True):
    enabled: bool = True
    patience: Annotated[int, msgspec.Meta(ge=1, le=bounds.MAX_PATIENCE)] = 10
    min_delta: Annotated[float, msgspec.Meta(ge=0, le=1e3)] = 1e-4


class TrainingSpec(Spec, frozen=True, kw_only=True):
    epochs: Annotated[int, msgspec.Meta(ge=1, le=bounds.MAX_EPOCHS)] = 50
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=bounds.MAX_BATCH_SIZE)] | Literal["auto"] = 256
    learning_rate: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1e-4
    split: SplitSpec = SplitSpec()
    class_weighting: Literal["inverse_frequency", "none"] = "inverse_frequency"
    gradient_clip_norm: Annotated[float, msgspec.Meta(ge=0, le=1e6)] = 1.0
    early_stopping: EarlyStoppingSpec = EarlyStoppingSpec()
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 42


def _three_sets(
    low: MembershipFunction, mid: MembershipFunction, high: MembershipFunction
) -> dict[str, MembershipFunction]:
    return {"low": low, "neutral": mid, "high": high}


def default_indicators() -> list[IndicatorSpec]:
    return [
        IndicatorSpec(id="rsi_14", type="rsi", params={"period": 14}),
        IndicatorSpec(id="macd_12_26_9", type="macd", params={"fast": 12, "slow": 26, "signal": 9}),
        IndicatorSpec(id="roc_10", type="roc", params={"period": 10}),
        IndicatorSpec(id="adx_14", type="adx", params={"period": 14}),
        IndicatorSpec(id="atr_14", type="atr", params={"period": 14}),
        IndicatorSpec(id="sma_50", type="sma", params={"period": 50}),
        IndicatorSpec(id="ema_20", type="ema", params={"period": 20}),
        IndicatorSpec(id="bbands_20", type="bbands", params={"period": 20, "stddev": 2.0}),
        IndicatorSpec(
            id="stoch_14", type="stochastic", params={"k_period": 14, "d_period": 3, "smooth": 3}
        ),
        IndicatorSpec(id="willr_14", type="williams_r", params={"period": 14}),
    ]


def default_fuzzy_sets() -> list[FuzzySetSpec]:
    tri, trap, gauss = Triangular, Trapezoidal, Gaussian
    return [
        FuzzySetSpec(
            indicator="rsi_14",
            sets=_three_sets(
                trap(a=0, b=0, c=25, d=40), tri(a=30, b=50, c=70), trap(a=60, b=75, c=100, d=100)
            ),
        ),
        FuzzySetSpec(
            indicator="macd_12_26_9",
            sets=_three_sets(
                gauss(mean=-0.5, sigma=0.3), gauss(mean=0, sigma=0.2), gauss(mean=0.5, sigma=0.3)
            ),
        ),
        FuzzySetSpec(
            indicator="roc_10",
            sets=_three_sets(
                trap(a=-100, b=-100, c=-5, d=-1), tri(a=-3, b=0, c=3), trap(a=1, b=5, c=100, d=100)
            ),
        ),
        FuzzySetSpec(
            indicator="adx_14",
            sets={
                "weak": trap(a=0, b=0, c=15, d=25),
                "trending": tri(a=20, b=30, c=45),
                "strong": trap(a=40, b=55, c=100, d=100),
            },
        ),
        FuzzySetSpec(
            indicator="atr_14",
            sets=_three_sets(
                gauss(mean=0.8, sigma=0.4), gauss(mean=1.5, sigma=0.5), gauss(mean=3.0, sigma=1.0)
            ),
        ),
        FuzzySetSpec(
            indicator="sma_50",
            sets={
                "below": trap(a=-100, b=-100, c=-5, d=0),
                "near": tri(a=-3, b=0, c=3),
                "above": trap(a=0, b=5, c=100, d=100),
            },
        ),
        FuzzySetSpec(
            indicator="ema_20",
            sets={
                "below": trap(a=-100, b=-100, c=-3, d=0),
                "near": tri(a=-2, b=0, c=2),
                "above": trap(a=0, b=3, c=100, d=100),
            },
        ),
        FuzzySetSpec(
            indicator="bbands_20",
            sets=_three_sets(
                trap(a=-1, b=-1, c=0, d=0.3), tri(a=0.2, b=0.5, c=0.8), trap(a=0.7, b=1, c=2, d=2)
            ),
        ),
        FuzzySetSpec(
            indicator="stoch_14",
            sets=_three_sets(
                trap(a=0, b=0, c=15, d=30), tri(a=20, b=50, c=80), trap(a=70, b=85, c=100, d=100)
            ),
        ),
        FuzzySetSpec(
            indicator="willr_14",
            sets=_three_sets(
                trap(a=-100, b=-100, c=-85, d=-70),
                tri(a=-80, b=-50, c=-20),
                trap(a=-30, b=-15, c=0, d=0),
            ),
        ),
    ]


class Strategy(Spec, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(pattern=bounds.STRATEGY_NAME_PATTERN)] = "neuro_fuzzy_default"
    indicators: Annotated[
        list[IndicatorSpec], msgspec.Meta(min_length=1, max_length=bounds.MAX_INDICATORS)
    ] = msgspec.field(default_factory=default_indicators)
    fuzzy_sets: Annotated[
        list[FuzzySetSpec], msgspec.Meta(min_length=1, max_length=bounds.MAX_INDICATORS)
    ] = msgspec.field(default_factory=default_fuzzy_sets)
    labels: ZigZagLabels = ZigZagLabels()
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
