"""A corpus of bad requests: each is refused with a ContractError naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import bus_contracts as bc

MINIMAL = {"symbols": ["SPX"], "timeframe": "1d"}
TRI = {"shape": "triangular", "a": 0, "b": 50, "c": 100}


def start(**fields: Any) -> bytes:
    return json.dumps({**MINIMAL, **fields}).encode()


def strategy(**fields: Any) -> bytes:
    return start(strategy=fields)


def training(**fields: Any) -> bytes:
    return strategy(training=fields)


def one_indicator(type_: str, **params: float) -> bytes:
    spec = {"id": "ind", "type": type_, "params": params}
    return strategy(indicators=[spec], fuzzy_sets=[{"indicator": "ind", "sets": {"mid": TRI}}])


def fuzzy(indicator: str = "rsi_14", **sets: dict[str, Any]) -> bytes:
    return strategy(fuzzy_sets=[{"indicator": indicator, "sets": sets or {"mid": TRI}}])


def case(id: str, body: bytes, field: str | None, fragment: str, type_: type = bc.StartTraining):
    return pytest.param(body, type_, field, fragment, id=id)


H, L, S = bc.HealthRequest, bc.ListJobs, bc.StopTraining
TRAINING = "strategy.training"
SETS = "strategy.fuzzy_sets[0].sets"
PARAMS = "strategy.indicators[0].params"
DEEP = b"[" * 10_000 + b"]" * 10_000
PATTERN = "must match the pattern"

# fmt: off
CORPUS = [
    # wrong types
    case("symbols-as-string", start(symbols="SPX"), "symbols", "expected array, got str"),
    case("epochs-str", training(epochs="50"), f"{TRAINING}.epochs", "expected int, got str"),
    case("epochs-float", training(epochs=1.5), f"{TRAINING}.epochs", "expected int, got float"),
    case("dropout-bool", strategy(model={"dropout": True}), "strategy.model.dropout",
         "expected float, got bool"),
    case("version-str", start(schema_version="1"), "schema_version", "expected int, got str"),
    case("detailed-str", b'{"detailed":"yes"}', "detailed", "expected bool, got str", H),
    case("batch-size-word", training(batch_size="big"), f"{TRAINING}.batch_size",
         "invalid value 'big'; allowed: 'auto', int"),
    # unknown and misspelt fields
    case("misspelt-epoch", training(epoch=3), f"{TRAINING}.epoch",
         "unknown field; did you mean 'epochs'?"),
    case("misspelt-symbol", json.dumps({"symbol": ["SPX"], "timeframe": "1d"}).encode(),
         "symbol", "did you mean 'symbols'?"),
    case("misspelt-learning-rate", training(learning_rat=0.1), f"{TRAINING}.learning_rat",
         "did you mean 'learning_rate'?"),
    case("misspelt-nested", training(early_stopping={"patients": 3}),
         f"{TRAINING}.early_stopping.patients", "did you mean 'patience'?"),
    case("misspelt-limit", b'{"limt":5}', "limt", "did you mean 'limit'?", L),
    case("unknown-top-level", start(priority=1), "priority", "unknown field"),
    case("unknown-in-status", b'{"task":"x"}', "task", "unknown field", bc.StatusRequest),
    case("unknown-in-union-member", fuzzy(mid={**TRI, "d": 4}), f"{SETS}[...].d",
         "unknown field"),
    # bounds
    case("epochs-0", training(epochs=0), f"{TRAINING}.epochs", "must be >= 1"),
    case("epochs-1e9", training(epochs=10**9), f"{TRAINING}.epochs", "must be <= 10000"),
    case("nine-hidden-layers", strategy(model={"hidden_layers": [8] * 9}),
         "strategy.model.hidden_layers", "must have at most 8 items"),
    case("5000-units", strategy(model={"hidden_layers": [5000]}),
         "strategy.model.hidden_layers[0]", "must be <= 4096"),
    case("118M-parameters", strategy(model={"hidden_layers": [4096] * 8}),
         "strategy.model.hidden_layers", "at most 20,000,000"),
    case("batch-0", training(batch_size=0), f"{TRAINING}.batch_size", "must be >= 1"),
    case("dropout-1", strategy(model={"dropout": 1.0}), "strategy.model.dropout", "must be < 1.0"),
    case("21-symbols", start(symbols=[f"S{i}" for i in range(21)]), "symbols",
         "must have at most 20 items"),
    case("no-symbols", start(symbols=[]), "symbols", "must have at least 1 items"),
    case("long-stop-reason", b'{"reason":"' + b"x" * 501 + b'"}', "reason",
         "must be at most 500 characters long", S),
    case("jobs-limit-0", b'{"limit":0}', "limit", "must be >= 1", L),
    case("split-train-1", training(split={"train": 1.0}), f"{TRAINING}.split.train",
         "must be < 1.0"),
    # symbols that try to be paths
    case("dotdot-symbol", start(symbols=["../../etc"]), "symbols[0]", PATTERN),
    case("traversal-symbol", start(symbols=["SPX", "SPX/../x"]), "symbols[1]", PATTERN),
    case("absolute-symbol", start(symbols=["/etc/passwd"]), "symbols[0]", PATTERN),
    case("lowercase-symbol", start(symbols=["spx"]), "symbols[0]", PATTERN),
    case("duplicate-symbol", start(symbols=["SPX", "MSFT", "SPX"]), "symbols[2]",
         "duplicate symbol 'SPX'"),
    # task ids
    case("task-id-dot", start(task_id="job.1"), "task_id", PATTERN),
    case("task-id-space", start(task_id="job 1"), "task_id", PATTERN),
    case("task-id-65-chars", start(task_id="x" * 65), "task_id", PATTERN),
    case("task-id-dotdot", start(task_id=".."), "task_id", PATTERN),
    case("task-id-empty", start(task_id=""), "task_id", PATTERN),
    # bodies that are not one well-formed JSON object
    case("non-utf8", b'{"symbols":["SP\xff"],"timeframe":"1d"}', None,
         "body is not valid UTF-8 (byte 15)"),
    case("deep-arrays", DEEP, None, "expected object, got array"),
    case("deep-arrays-in-field", b'{"symbols":' + DEEP + b',"timeframe":"1d"}', "symbols[0]",
         "expected str, got array"),
    case("number-1e400", start()[:-1] + b',"progress_interval_s":1e400}', "progress_interval_s",
         "number out of range"),
    case("number-1e30-float", training(learning_rate=10**30), f"{TRAINING}.learning_rate",
         "must be <= 1.0"),
    case("number-1e30-int", b'{"limit":' + b"1" + b"0" * 30 + b"}", "limit", "must be <= 1000", L),
    case("empty-body", b"", None, "empty body: expected a JSON object"),
    case("whitespace-body", b"  \n", None, "empty body: expected a JSON object"),
    case("array-body", b'["SPX","1d"]', None, "expected object, got array"),
    case("string-body", b'"SPX"', None, "expected object, got str"),
    case("null-body", b"null", None, "expected object, got null"),
    case("array-status", b"[]", None, "expected object, got array", bc.StatusRequest),
    case("truncated", start()[:-1], None, "malformed JSON: input data was truncated"),
    case("trailing-garbage", start() + b" {}", None, "malformed JSON: trailing characters"),
    case("python-dict", b"{'symbols': ['SPX']}", None, "malformed JSON"),
    # values outside an enumeration, a pattern or a format
    case("bad-timeframe", start(timeframe="2d"), "timeframe",
         "invalid value '2d'; allowed: '15m', '1d'"),
    case("missing-timeframe", json.dumps({"symbols": ["SPX"]}).encode(), "timeframe",
         "required field is missing"),
    case("device-cuda-x", start(device="cuda:x"), "device", PATTERN),
    case("device-tpu", start(device="tpu"), "device", PATTERN),
    case("fp8", start(mixed_precision="fp8"), "mixed_precision", "invalid value 'fp8'"),
    case("bad-date", start(start_date="2024-13-01"), "start_date", "invalid RFC3339 encoded date"),
    case("foreign-type-tag", start(type="training.stop"), "type",
         "invalid value 'training.stop'; allowed: 'training.start'"),
    case("foreign-tag-on-status", b'{"type":"training.start"}', "type",
         "allowed: 'training.status_request'", bc.StatusRequest),
    case("bad-job-state", b'{"states":["done"]}', "states[0]", "invalid value 'done'", L),
    case("unknown-indicator-type", strategy(indicators=[{"id": "v", "type": "vwap"}]),
         "strategy.indicators[0].type", "invalid value 'vwap'"),
    case("indicator-id-digit", strategy(indicators=[{"id": "1st", "type": "rsi"}]),
         "strategy.indicators[0].id", PATTERN),
    # fuzzy sets
    case("fuzzy-unknown-indicator", fuzzy("rsi_99"), "strategy.fuzzy_sets[0].indicator",
         "unknown indicator 'rsi_99'"),
    case("fuzzy-unknown-output", fuzzy("rsi_14.signal"), "strategy.fuzzy_sets[0].indicator",
         "rsi has no output 'signal'; outputs: value"),
    case("fuzzy-bad-shape", fuzzy(mid={"shape": "tri", "a": 1}), f"{SETS}[...].shape",
         "allowed: 'triangular', 'trapezoidal', 'gaussian'"),
    case("fuzzy-bad-set-name", fuzzy(**{"mid-point": TRI}), SETS, f"key {PATTERN}"),
    case("fuzzy-no-sets", strategy(fuzzy_sets=[{"indicator": "rsi_14", "sets": {}}]), SETS,
         "must have at least 1 entries"),
    case("triangle-unordered", fuzzy(mid={"shape": "triangular", "a": 10, "b": 5, "c": 20}),
         f"{SETS}.mid", "triangular needs a <= b <= c and a < c; got 10, 5, 20"),
    case("triangle-zero-width", fuzzy(flat={"shape": "triangular", "a": 5, "b": 5, "c": 5}),
         f"{SETS}.flat", "triangular needs"),
    case("trapezoid-unordered",
         fuzzy(high={"shape": "trapezoidal", "a": 0, "b": 30, "c": 20, "d": 40}),
         f"{SETS}.high", "trapezoidal needs a <= b <= c <= d and a < d"),
    case("gaussian-zero-sigma", fuzzy(wide={"shape": "gaussian", "mean": 0, "sigma": 0}),
         f"{SETS}[...].sigma", "must be > 0"),
    # split
    case("split-over-1", training(split={"train": 0.8}), f"{TRAINING}.split",
         "train + validation + test must sum to 1, not 1.1"),
    case("split-under-1", training(split={"train": 0.5, "validation": 0.1, "test": 0.1}),
         f"{TRAINING}.split", "must sum to 1, not 0.7"),
    # indicators
    case("duplicate-indicator-id",
         strategy(indicators=[{"id": "a", "type": "rsi"}, {"id": "a", "type": "ema"}]),
         "strategy.indicators[1].id", "duplicate indicator id 'a'"),
    case("unknown-indicator-param", one_indicator("rsi", length=14), f"{PARAMS}.length",
         "unknown parameter for rsi; allowed: period"),
    case("param-below-range", one_indicator("rsi", period=1), f"{PARAMS}.period",
         "must be between 2 and 500"),
    case("param-above-range", one_indicator("bbands", stddev=11), f"{PARAMS}.stddev",
         "must be between 0.1 and 10"),
    case("fractional-period", one_indicator("ema", period=20.5), f"{PARAMS}.period",
         "must be a whole number"),
    case("macd-fast-equals-slow", one_indicator("macd", fast=26, slow=26), f"{PARAMS}.fast",
         "must be less than slow (26)"),
    case("macd-fast-above-default-slow", one_indicator("macd", fast=30), f"{PARAMS}.fast",
         "must be less than slow (26)"),
    # dates
    case("start-after-end", start(start_date="2024-06-01", end_date="2024-01-01"), "start_date",
         "must not be after end_date (2024-01-01)"),
]
# fmt: on


@pytest.mark.parametrize(("body", "type_", "field", "fragment"), CORPUS)
def test_bad_request_is_refused_naming_the_field(
    body: bytes, type_: type[bc.Request], field: str | None, fragment: str
) -> None:
    with pytest.raises(bc.ContractError, match=re.escape(fragment)) as caught:
        bc.decode_request(body, type_)
    assert caught.value.field == field
    assert caught.value.code == 400
    assert "`" not in caught.value.problem
    assert "$." not in str(caught.value)


def test_corpus_is_large_and_ids_are_unique() -> None:
    ids = [param.id for param in CORPUS]
    assert len(ids) >= 35
    assert len(set(ids)) == len(ids)


def test_too_large_body_is_413() -> None:
    body = start(strategy={"name": "x" * bc.bounds.MAX_REQUEST_BYTES})
    with pytest.raises(bc.ContractError, match=r"the limit is 262144") as caught:
        bc.decode_request(body, bc.StartTraining)
    assert (caught.value.code, caught.value.field) == (413, None)


def test_body_at_the_limit_is_judged_on_its_content() -> None:
    padding = bc.bounds.MAX_REQUEST_BYTES - len(start())
    body = start()[:-1] + b" " * padding + b"}"
    assert len(body) == bc.bounds.MAX_REQUEST_BYTES
    assert bc.decode_request(body, bc.StartTraining).symbols == ["SPX"]


def test_custom_indicators_with_default_fuzzy_sets_get_a_hint() -> None:
    body = strategy(indicators=[{"id": "rsi_7", "type": "rsi", "params": {"period": 7}}])
    with pytest.raises(bc.ContractError, match="so give fuzzy_sets too") as caught:
        bc.decode_request(body, bc.StartTraining)
    assert caught.value.field == "strategy.fuzzy_sets[0].indicator"


def test_long_unknown_field_name_is_clipped_in_the_error() -> None:
    body = json.dumps({"x" * 1000: 1}).encode()
    with pytest.raises(bc.ContractError, match="unknown field") as caught:
        bc.decode_request(body, bc.StatusRequest)
    assert caught.value.field == "x" * 63 + "…"


class Freeform(bc.Request, frozen=True, kw_only=True, tag="test.freeform"):
    """A request with a free-form field: the only kind where JSON may nest deeply."""

    payload: Any = None


def test_nesting_too_deep_for_the_decoder_is_a_contract_error() -> None:
    body = b'{"payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(bc.ContractError, match="malformed JSON: nested too deeply") as caught:
        bc.decode_request(body, Freeform)
    assert caught.value.field is None
