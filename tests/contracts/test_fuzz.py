"""Whatever bytes arrive, decoding answers with a message or a ContractError, never a crash.

A request handler relies on this: any other exception would reach nats.micro
and leak ``repr(exc)`` to the caller as a 500.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bus_contracts as bc

from .samples import REQUESTS, as_json, message_types

REQUEST_TYPES = message_types(bc.Request)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


# Real field names make generated objects reach past the first level of checks.
FIELD_NAMES = sorted({key for msg in REQUESTS for key in _keys(as_json(msg))})

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["SPX", "1d", "auto", "rsi", "triangular", "2024-01-31", "training.start"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    children: list[tuple[object, object]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    return [prefix] + [p for key, child in children for p in _paths(child, (*prefix, key))]


def _replace(value: Any, path: tuple[object, ...], new: object) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)  # type: ignore[index]
    return copy


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[type[bc.Request], bytes]:
    """A valid sample request with one value, anywhere in it, replaced by any JSON."""
    msg = draw(st.sampled_from(REQUESTS))
    body = as_json(msg)
    path = draw(st.sampled_from(_paths(body)))
    return type(msg), json.dumps(_replace(body, path, draw(json_values))).encode()


def _decode_or_refuse(body: bytes, type_: type[bc.Request]) -> None:
    """Fail the test unless decoding gives a ``type_`` or a well-formed ContractError."""
    try:
        outcome: object = bc.decode_request(body, type_)
    except bc.ContractError as exc:
        outcome = exc
    if isinstance(outcome, bc.ContractError):
        assert outcome.code in (400, 413)
        assert outcome.problem
    else:
        assert isinstance(outcome, type_)


@pytest.mark.parametrize("type_", REQUEST_TYPES, ids=lambda t: t.__name__)
@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes(type_: type[bc.Request], body: bytes) -> None:
    _decode_or_refuse(body, type_)


@pytest.mark.parametrize("type_", REQUEST_TYPES, ids=lambda t: t.__name__)
@FUZZ
@given(value=json_values)
def test_arbitrary_json(type_: type[bc.Request], value: object) -> None:
    _decode_or_refuse(json.dumps(value).encode(), type_)


@FUZZ
@given(mutated_requests())
def test_valid_requests_with_one_value_replaced(case: tuple[type[bc.Request], bytes]) -> None:
    type_, body = case
    _decode_or_refuse(body, type_)


@FUZZ
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_replies_and_events_never_crash(body: bytes) -> None:
    with contextlib.suppress(bc.ReplyDecodeError):
        bc.decode_reply(body, bc.TrainingStatus)
    with contextlib.suppress(bc.ReplyDecodeError):
        bc.decode_event(body)
