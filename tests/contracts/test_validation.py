"""Cross-field rules of a training request, called directly as the engine would."""

from __future__ import annotations

import datetime as dt
from typing import Any, get_args

import pytest

import bus_contracts as bc

from .samples import CUSTOM_STRATEGY, REQUESTS


def request(strategy: bc.Strategy = CUSTOM_STRATEGY, **fields: Any) -> bc.StartTraining:
    return bc.StartTraining(symbols=["SPX"], timeframe="1d", strategy=strategy, **fields)


def test_default_request_is_valid_and_returned_unchanged() -> None:
    req = bc.StartTraining(symbols=["SPX"], timeframe="1d")
    assert bc.validate_start(req) is req


@pytest.mark.parametrize(
    "req", [r for r in REQUESTS if isinstance(r, bc.StartTraining)], ids=["custom", "default"]
)
def test_sample_requests_are_valid(req: bc.StartTraining) -> None:
    assert bc.validate_start(req) is req


def test_same_start_and_end_date_is_one_day() -> None:
    day = dt.date(2024, 1, 2)
    assert bc.validate_start(request(start_date=day, end_date=day)).end_date == day


def test_split_within_float_rounding_of_one_is_accepted() -> None:
    split = bc.SplitSpec(train=0.7, validation=0.2, test=0.1)
    assert split.train + split.validation + split.test != 1.0
    strategy = bc.Strategy(training=bc.TrainingSpec(split=split))
    assert bc.validate_start(request(strategy)).strategy.training.split == split


def test_two_fuzzy_sets_on_one_output_are_refused() -> None:
    sets = {"mid": bc.Triangular(a=0, b=50, c=100)}
    strategy = bc.Strategy(
        indicators=[bc.IndicatorSpec(id="rsi", type="rsi")],
        fuzzy_sets=[
            bc.FuzzySetSpec(indicator="rsi", sets=sets),
            bc.FuzzySetSpec(indicator="rsi.value", sets=sets),
        ],
    )
    with pytest.raises(
        bc.ContractError, match=r"already has fuzzy sets at strategy.fuzzy_sets\[0\]"
    ) as caught:
        bc.validate_start(request(strategy))
    assert caught.value.field == "strategy.fuzzy_sets[1].indicator"


def test_fuzzy_sets_on_different_outputs_of_one_indicator_are_fine() -> None:
    sets = {"neg": bc.Gaussian(mean=-1, sigma=1), "pos": bc.Gaussian(mean=1, sigma=1)}
    strategy = bc.Strategy(
        indicators=[bc.IndicatorSpec(id="m", type="macd")],
        fuzzy_sets=[
            bc.FuzzySetSpec(indicator="m", sets=sets),
            bc.FuzzySetSpec(indicator="m.signal", sets=sets),
        ],
    )
    assert bc.validate_start(request(strategy)).strategy is strategy


def test_shoulder_shaped_trapezoid_is_fine() -> None:
    shoulder = bc.Trapezoidal(a=0, b=0, c=25, d=40)
    strategy = bc.Strategy(
        indicators=[bc.IndicatorSpec(id="r", type="rsi")],
        fuzzy_sets=[bc.FuzzySetSpec(indicator="r", sets={"low": shoulder})],
    )
    assert bc.validate_start(request(strategy)).strategy is strategy


def test_fuzzy_error_without_default_sets_has_no_default_hint() -> None:
    strategy = bc.Strategy(
        indicators=[bc.IndicatorSpec(id="r", type="rsi")],
        fuzzy_sets=[bc.FuzzySetSpec(indicator="q", sets={"x": bc.Gaussian(mean=0, sigma=1)})],
    )
    with pytest.raises(bc.ContractError, match=r"unknown indicator 'q'; declared: r$"):
        bc.validate_start(request(strategy))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (bc.IndicatorSpec(id="r", type="rsi"), {"period": 14}),
        (bc.IndicatorSpec(id="r", type="rsi", params={"period": 7.0}), {"period": 7}),
        (
            bc.IndicatorSpec(id="m", type="macd", params={"slow": 30}),
            {"fast": 12, "slow": 30, "signal": 9},
        ),
        (
            bc.IndicatorSpec(id="b", type="bbands", params={"stddev": 2.5}),
            {"period": 20, "stddev": 2.5},
        ),
        (
            bc.IndicatorSpec(id="s", type="stochastic"),
            {"k_period": 14, "d_period": 3, "smooth": 3},
        ),
    ],
    ids=["rsi-default", "rsi-float-period", "macd-partial", "bbands", "stochastic"],
)
def test_resolved_params_fill_defaults(spec: bc.IndicatorSpec, expected: dict[str, float]) -> None:
    params = bc.resolved_params(spec)
    assert params == expected
    assert {name: type(value) for name, value in params.items()} == {
        name: int if name in bc.INTEGER_PARAMS else float for name in expected
    }


def test_every_indicator_type_has_params_and_outputs() -> None:
    types = set(get_args(bc.IndicatorType))
    assert set(bc.INDICATOR_PARAMS) == types
    assert set(bc.INDICATOR_OUTPUTS) == types
    for spec in bc.default_indicators():
        assert set(bc.resolved_params(spec)) == set(bc.INDICATOR_PARAMS[spec.type])
