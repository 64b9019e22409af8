"""JSON on the wire: one encoder, strict requests, tolerant replies and events.

Requests come from clients we do not control, so :func:`decode_request` raises
nothing but :class:`ContractError`, whose field path and problem are readable
by a person who typed the request into ``nats req``. Replies and events come
from peers that may run a newer version, so unknown fields pass, and an event
type this version does not know is skipped rather than fatal.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast, get_args

import msgspec
import msgspec.inspect as mi

from bus_contracts import bounds
from bus_contracts.base import Reply, Request
from bus_contracts.errors import ContractError, ReplyDecodeError
from bus_contracts.messages.errors import ErrorReply
from bus_contracts.messages.health import HealthReport, HealthRequest
from bus_contracts.messages.jobs import JobList, ListJobs
from bus_contracts.messages.performance import PerformanceRequest, TrainingPerformance
from bus_contracts.messages.progress import ProgressEvent
from bus_contracts.messages.start import StartTraining, TrainingAccepted
from bus_contracts.messages.status import StatusRequest, StopTraining, TrainingStatus
from bus_contracts.validation import validate_start

_RequestT = TypeVar("_RequestT", bound=Request)
_ReplyT = TypeVar("_ReplyT", bound=Reply)

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"
_MAX_ERROR_HEADER_CHARS = 512

_JSON_WHITESPACE = b" \t\r\n"
_NAME_CLIP = 64


class _TagOnly(msgspec.Struct):
    """Just the ``type`` of a message, to tell a newer event from garbage."""

    type: Any = None


_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(ProgressEvent)
_tag_decoder = msgspec.json.Decoder(_TagOnly)
_EVENT_TAGS = frozenset(event.__struct_config__.tag for event in get_args(ProgressEvent))
_CROSS_FIELD_CHECKS: dict[type[Request], Callable[[Any], Request]] = {StartTraining: validate_start}


def encode(msg: msgspec.Struct) -> bytes:
    """Any message as compact UTF-8 JSON, its ``type`` tag first."""
    return _encoder.encode(msg)


def decode_request(data: bytes, type_: type[_RequestT]) -> _RequestT:
    """Decode a request strictly; any fault is a :class:`ContractError`."""
    if len(data) > bounds.MAX_REQUEST_BYTES:
        raise ContractError(
            None, f"body is {len(data)} bytes; the limit is {bounds.MAX_REQUEST_BYTES}", code=413
        )
    if not data.strip(_JSON_WHITESPACE):
        return _empty_request(type_)
    try:
        msg = cast(_RequestT, _request_decoder(type_).decode(data))
    except msgspec.ValidationError as exc:
        raise _contract_error(str(exc), type_) from exc
    except msgspec.DecodeError as exc:
        raise ContractError(None, _malformed(data, exc)) from exc
    except RecursionError as exc:
        raise ContractError(None, "malformed JSON: nested too deeply") from exc
    check = _CROSS_FIELD_CHECKS.get(type_)
    return cast(_RequestT, check(msg)) if check else msg


def decode_reply(data: bytes, type_: type[_ReplyT]) -> _ReplyT | ErrorReply:
    """Decode a reply tolerantly: the success message or an error, told by ``type``."""
    try:
        return cast(_ReplyT | ErrorReply, _reply_decoder(type_).decode(data))
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ReplyDecodeError(f"not a {type_.__name__} or an error reply: {exc}") from exc


def decode_event(data: bytes) -> ProgressEvent | None:
    """Decode a progress event tolerantly; None for an event type this version
    does not know (a newer peer), so a watcher can skip it and go on."""
    try:
        return _event_decoder.decode(data)
    except msgspec.ValidationError as exc:
        if _names_unknown_event(data):
            return None
        raise ReplyDecodeError(f"not a progress event: {exc}") from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ReplyDecodeError(f"not a progress event: {exc}") from exc


def error_headers(reply: ErrorReply) -> dict[str, str]:
    """The NATS micro error headers for ``reply``, so ``nats req`` and micro
    clients see the error without parsing the body. Control characters (which
    could end the header block early) become spaces."""
    message = re.sub(r"[\x00-\x1f\x7f]+", " ", reply.message)[:_MAX_ERROR_HEADER_CHARS]
    return {ERROR_CODE_HEADER: str(reply.code), ERROR_HEADER: message}


@functools.cache
def _request_decoder(type_: type[Request]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


@functools.cache
def _reply_decoder(type_: type[Reply]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_ | ErrorReply)


@functools.cache
def _type_info(type_: type[msgspec.Struct]) -> mi.Type:
    return mi.type_info(type_)


_KNOWN_REQUESTS = (
    StartTraining,
    StatusRequest,
    StopTraining,
    PerformanceRequest,
    ListJobs,
    HealthRequest,
)
_KNOWN_REPLIES = (TrainingAccepted, TrainingStatus, TrainingPerformance, JobList, HealthReport)


def _build_decoders() -> None:
    """Build what decoding every known message needs now, not on a first request."""
    for request in _KNOWN_REQUESTS:
        _request_decoder(request)
        _type_info(request)
    for reply in _KNOWN_REPLIES:
        _reply_decoder(reply)


_build_decoders()


def _empty_request(type_: type[_RequestT]) -> _RequestT:
    info = cast(mi.StructType, _type_info(type_))
    if any(field.required for field in info.fields):
        raise ContractError(None, "empty body: expected a JSON object")
    return type_()


def _names_unknown_event(data: bytes) -> bool:
    try:
        tag = _tag_decoder.decode(data).type
    except (msgspec.DecodeError, RecursionError):
        return False
    return isinstance(tag, str) and tag not in _EVENT_TAGS


def _malformed(data: bytes, exc: msgspec.DecodeError) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"body is not valid UTF-8 (byte {bad.start})"
    return "malformed JSON: " + _lower_first(str(exc).removeprefix("JSON is malformed: "))


# msgspec reports e.g. "Expected `int` <= 10000 - at `$.strategy.training.epochs`";
# these turn it into field "strategy.training.epochs" and problem "must be <= 10000".
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>.*)`", re.S)
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<name>.*)`", re.S)
_BOUND = re.compile(r"Expected `\w+` (?P<op>[<>]=?) (?P<limit>\S+)")
_LENGTH = re.compile(r"Expected `(?P<kind>\w+)` of length (?P<op>[<>]=) (?P<limit>\d+)")
_PATTERN = re.compile(r"Expected `str` matching regex (?P<regex>.+)", re.S)
_INVALID = re.compile(r"Invalid (?:enum )?value (?P<value>.+)", re.S)
_WRONG_TYPE = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_PATH_STEP = re.compile(r"\.(?P<name>[^.\[]+)|\[[^\]]*\]")
_LENGTH_UNITS = {
    "array": ("have", "items"),
    "object": ("have", "entries"),
    "str": ("be", "characters long"),
}


def _contract_error(message: str, root: type[msgspec.Struct]) -> ContractError:
    what, sep, where = message.rpartition(" - at `")
    if not sep:
        what, where = message, ""
    in_key = where.startswith("key` in `")
    path = where.removeprefix("key` in `").removeprefix("$").removesuffix("`")
    if match := _UNKNOWN_FIELD.fullmatch(what):
        name = _clip(match["name"])
        known = [n for n in _field_names_at(root, path) if n != name]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ContractError(_join(path, name), f"unknown field{hint}")
    if match := _MISSING_FIELD.fullmatch(what):
        return ContractError(_join(path, _clip(match["name"])), "required field is missing")
    problem = _readable(what, root, path)
    return ContractError(path.removeprefix(".") or None, f"key {problem}" if in_key else problem)


def _readable(what: str, root: type[msgspec.Struct], path: str) -> str:
    if match := _LENGTH.fullmatch(what):
        verb, unit = _LENGTH_UNITS.get(match["kind"], ("have", "items"))
        most = "at most" if match["op"] == "<=" else "at least"
        return f"must {verb} {most} {match['limit']} {unit}"
    if match := _BOUND.fullmatch(what):
        return f"must be {match['op']} {match['limit']}"
    if match := _PATTERN.fullmatch(what):
        return f"must match the pattern {match['regex']}"
    if match := _INVALID.fullmatch(what):
        allowed = ", ".join(_allowed_values(root, path))
        return f"invalid value {_clip(match['value'])}" + (
            f"; allowed: {allowed}" if allowed else ""
        )
    if match := _WRONG_TYPE.fullmatch(what):
        return f"expected {match['want']}, got {match['got']}"
    return _lower_first(what.replace("`", ""))


def _nodes_at(root: type[msgspec.Struct], path: str) -> list[mi.Type]:
    """The schema types a msgspec error path may point at (several under a union)."""
    nodes = [_type_info(root)]
    for step in _PATH_STEP.finditer(path):
        nodes = [
            child for node in nodes for m in _members(node) for child in _child(m, step["name"])
        ]
    return nodes


def _members(node: mi.Type) -> tuple[mi.Type, ...]:
    return node.types if isinstance(node, mi.UnionType) else (node,)


def _child(node: mi.Type, name: str | None) -> list[mi.Type]:
    """The types one step below ``node``: a named field, or (``name`` None) an item."""
    if isinstance(node, mi.ListType) and name is None:
        return [node.item_type]
    if isinstance(node, mi.DictType) and name is None:
        return [node.value_type]
    if isinstance(node, mi.StructType) and name == node.tag_field:
        return [mi.LiteralType(values=(node.tag,))]
    if isinstance(node, mi.StructType):
        return [field.type for field in node.fields if field.encode_name == name]
    return []


def _field_names_at(root: type[msgspec.Struct], path: str) -> list[str]:
    return [
        field.encode_name
        for node in _nodes_at(root, path)
        for m in _members(node)
        if isinstance(m, mi.StructType)
        for field in m.fields
    ]


def _allowed_values(root: type[msgspec.Struct], path: str) -> list[str]:
    """What a field accepts, for the message: literal values, then other kinds."""
    members = [m for node in _nodes_at(root, path) for m in _members(node)]
    values = [repr(v) for m in members if isinstance(m, mi.LiteralType) for v in m.values]
    kinds = [
        type(m).__name__.removesuffix("Type").lower()
        for m in members
        if not isinstance(m, mi.LiteralType | mi.NoneType)
    ]
    return values + kinds


def _join(path: str, name: str) -> str:
    return f"{path.removeprefix('.')}.{name}" if path else name


def _clip(text: str) -> str:
    """Echo at most a few dozen characters of what the client sent."""
    return text if len(text) <= _NAME_CLIP else text[: _NAME_CLIP - 1] + "…"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
