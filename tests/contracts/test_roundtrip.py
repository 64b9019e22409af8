"""Every message survives encode → decode, and the defaults make a short request complete."""

from __future__ import annotations

from typing import get_args

import msgspec
import pytest

import bus_contracts as bc

from .samples import EVENTS, REPLIES, REQUESTS, message_types


def _id(msg: msgspec.Struct) -> str:
    return type(msg).__name__


def test_every_message_type_has_a_sample() -> None:
    sampled = {type(msg) for msg in (*REQUESTS, *REPLIES, *EVENTS)}
    assert set(message_types(bc.Request)) <= sampled
    assert set(message_types(bc.Reply)) <= sampled
    assert set(get_args(bc.ProgressEvent)) <= sampled


@pytest.mark.parametrize("msg", REQUESTS, ids=_id)
def test_request_round_trips(msg: bc.Request) -> None:
    assert bc.decode_request(bc.encode(msg), type(msg)) == msg


@pytest.mark.parametrize("msg", REPLIES, ids=_id)
def test_reply_round_trips(msg: bc.Reply) -> None:
    assert bc.decode_reply(bc.encode(msg), type(msg)) == msg


@pytest.mark.parametrize("msg", EVENTS, ids=_id)
def test_event_round_trips(msg: bc.ProgressEvent) -> None:
    assert bc.decode_event(bc.encode(msg)) == msg


def test_encode_puts_the_tag_first_and_the_schema_version_in() -> None:
    assert bc.encode(bc.StopTraining(reason="x")) == (
        b'{"type":"training.stop","schema_version":1,"reason":"x"}'
    )


def test_minimal_start_request_gets_full_defaults() -> None:
    req = bc.decode_request(b'{"symbols":["SPX"],"timeframe":"1d"}', bc.StartTraining)

    assert req == bc.StartTraining(symbols=["SPX"], timeframe="1d")
    assert (req.task_id, req.device, req.mixed_precision) == (None, "auto", "auto")
    training = req.strategy.training
    assert (training.epochs, training.batch_size, training.learning_rate) == (50, 256, 1e-3)
    assert (training.split.train, training.split.validation, training.split.test) == (
        0.70,
        0.15,
        0.15,
    )
    assert {spec.type for spec in req.strategy.indicators} == set(get_args(bc.IndicatorType))
    assert req.strategy.model.hidden_layers == [64, 32]
    assert req.strategy.labels == bc.ZigZagLabels(threshold=0.03, lookahead_bars=20)


def test_request_may_carry_its_own_type_tag() -> None:
    body = b'{"type":"training.stop","reason":"done"}'
    assert bc.decode_request(body, bc.StopTraining) == bc.StopTraining(reason="done")


@pytest.mark.parametrize("body", [b"", b" \r\n\t "], ids=["empty", "whitespace"])
@pytest.mark.parametrize(
    "type_",
    [bc.StatusRequest, bc.StopTraining, bc.PerformanceRequest, bc.ListJobs, bc.HealthRequest],
    ids=lambda t: t.__name__,
)
def test_empty_body_means_defaults(body: bytes, type_: type[bc.Request]) -> None:
    assert bc.decode_request(body, type_) == type_()
