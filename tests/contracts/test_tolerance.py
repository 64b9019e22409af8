"""Replies and events are read tolerantly (a newer peer may add fields or event
types), while garbage from a broken peer is a ReplyDecodeError, never a crash."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

import bus_contracts as bc

from .samples import EVENTS, REPLIES, STATUS


def _id(msg: msgspec.Struct) -> str:
    return type(msg).__name__


def _with_extra_fields(msg: msgspec.Struct) -> bytes:
    """``msg`` as a newer peer might send it: extra fields in it and in every nested Struct."""

    def extend(obj: dict[str, Any], struct: msgspec.Struct) -> None:
        obj["added_in_v2"] = {"anything": [1, 2, 3]}
        for field in msgspec.structs.fields(struct):
            value, encoded = getattr(struct, field.name), obj[field.encode_name]
            if isinstance(value, msgspec.Struct):
                extend(encoded, value)
            elif isinstance(value, list):
                for item, item_obj in zip(value, encoded, strict=True):
                    if isinstance(item, msgspec.Struct):
                        extend(item_obj, item)

    obj = json.loads(bc.encode(msg))
    extend(obj, msg)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("msg", REPLIES, ids=_id)
def test_reply_tolerates_unknown_fields(msg: bc.Reply) -> None:
    assert bc.decode_reply(_with_extra_fields(msg), type(msg)) == msg


@pytest.mark.parametrize("msg", EVENTS, ids=_id)
def test_event_tolerates_unknown_fields(msg: bc.ProgressEvent) -> None:
    assert bc.decode_event(_with_extra_fields(msg)) == msg


def test_reply_decodes_an_error_in_place_of_success() -> None:
    body = b'{"type":"error","code":409,"message":"task id taken","field":"task_id"}'
    reply = bc.decode_reply(body, bc.TrainingAccepted)
    assert reply == bc.ErrorReply(code=409, message="task id taken", field="task_id")


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"training.newer_event","task_id":"t","seq":9}',
        b'{"type":"training.newer_event"}',
        b'{"type":"error","code":500,"message":"not an event"}',
    ],
    ids=["newer-event", "bare-newer-event", "error-tag"],
)
def test_unknown_event_type_is_skipped(body: bytes) -> None:
    assert bc.decode_event(body) is None


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<html>502</html>", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"task_id":"t","state":"running"}', id="no-type-tag"),
        pytest.param(b'{"type":"training.job_list","jobs":[],"total":0}', id="other-reply-type"),
        pytest.param(b'{"type":"training.status","task_id":"t"}', id="missing-required"),
        pytest.param(
            b'{"type":"training.status","task_id":"t","state":"paused",'
            b'"executor":"host","host_id":"h"}',
            id="bad-enum",
        ),
        pytest.param(
            b'{"type":"error","code":500,"message":"m","details":{"d":' + DEEP + b"}}",
            id="deep-nesting",
        ),
    ],
)
def test_garbage_reply_is_a_reply_decode_error(body: bytes) -> None:
    with pytest.raises(bc.ReplyDecodeError, match="not a TrainingStatus or an error reply"):
        bc.decode_reply(body, bc.TrainingStatus)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[1,2]", id="array"),
        pytest.param(b'{"task_id":"t","seq":1}', id="no-type-tag"),
        pytest.param(b'{"type":7,"seq":1}', id="numeric-type-tag"),
        pytest.param(b'{"type":"training.queued","task_id":"t"}', id="known-type-missing-fields"),
        pytest.param(b'{"type":"training.newer","x":' + DEEP + b"}", id="deep-unknown-event"),
        pytest.param(b'{"type":"training.cancelled","x":' + DEEP + b"}", id="deep-known-event"),
    ],
)
def test_garbage_event_is_a_reply_decode_error(body: bytes) -> None:
    with pytest.raises(bc.ReplyDecodeError, match="not a progress event"):
        bc.decode_event(body)


def test_reply_decoding_ignores_a_newer_schema_version() -> None:
    body = json.loads(bc.encode(STATUS))
    body["schema_version"] = 2
    reply = bc.decode_reply(json.dumps(body).encode(), bc.TrainingStatus)
    assert isinstance(reply, bc.TrainingStatus)
    assert reply.schema_version == 2
