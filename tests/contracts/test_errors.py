"""The error model: ContractError for bad input, ServiceError subclasses by code."""

from __future__ import annotations

import pytest

import bus_contracts as bc


def test_contract_error_names_the_field_in_its_message() -> None:
    err = bc.ContractError("strategy.training.epochs", "must be <= 10000")
    assert isinstance(err, ValueError)
    assert (err.code, err.field, err.problem) == (
        400,
        "strategy.training.epochs",
        "must be <= 10000",
    )
    assert str(err) == "strategy.training.epochs: must be <= 10000"


def test_contract_error_about_the_whole_body() -> None:
    err = bc.ContractError(None, "empty body: expected a JSON object")
    assert str(err) == "empty body: expected a JSON object"


def test_contract_error_becomes_an_error_reply() -> None:
    reply = bc.ContractError("symbols[0]", "must match the pattern x", code=413).to_reply()
    assert reply == bc.ErrorReply(
        code=413, message="symbols[0]: must match the pattern x", field="symbols[0]"
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, bc.BadRequest),
        (404, bc.NotFound),
        (409, bc.Conflict),
        (413, bc.TooLarge),
        (503, bc.AtCapacity),
        (500, bc.InternalError),
    ],
)
def test_known_codes_map_to_their_class(code: int, kind: type[bc.ServiceError]) -> None:
    err = bc.ServiceError.from_reply(bc.ErrorReply(code=code, message="m"))
    assert type(err) is kind
    assert err.code == kind.default_code == code


def test_unknown_client_error_keeps_its_code_on_the_base_class() -> None:
    err = bc.ServiceError.from_reply(bc.ErrorReply(code=422, message="unprocessable"))
    assert type(err) is bc.ServiceError
    assert err.code == 422


@pytest.mark.parametrize("code", [502, 504, 200, 0, 999])
def test_other_unknown_codes_are_internal_errors(code: int) -> None:
    err = bc.ServiceError.from_reply(bc.ErrorReply(code=code, message="bad gateway"))
    assert type(err) is bc.InternalError
    assert err.code == code


def test_from_reply_keeps_every_detail_and_to_reply_gives_it_back() -> None:
    reply = bc.ErrorReply(
        code=500, message="internal error", field=None, error_id="e-1", details={"k": [1]}
    )
    err = bc.ServiceError.from_reply(reply)
    assert (err.message, err.error_id, err.details) == ("internal error", "e-1", {"k": [1]})
    assert err.to_reply() == reply


def test_service_error_message_carries_code_and_error_id() -> None:
    with pytest.raises(bc.InternalError, match=r"^\[500\] internal error \(error id e-9\)$"):
        raise bc.InternalError("internal error", error_id="e-9")


def test_subclass_is_catchable_as_service_error() -> None:
    reply = bc.ErrorReply(code=404, message="no job 'x'", field="task_id")
    with pytest.raises(bc.ServiceError, match="no job 'x'") as caught:
        raise bc.ServiceError.from_reply(reply)
    assert isinstance(caught.value, bc.NotFound)
    assert caught.value.field == "task_id"


def test_error_headers_follow_nats_micro() -> None:
    headers = bc.error_headers(bc.ErrorReply(code=404, message="no job 'x'"))
    assert headers == {"Nats-Service-Error-Code": "404", "Nats-Service-Error": "no job 'x'"}


def test_error_headers_cannot_be_split_or_bloated_by_the_message() -> None:
    message = "unknown field\r\nInjected: yes\x00" + "x" * 10_000
    value = bc.error_headers(bc.ErrorReply(code=400, message=message))[bc.ERROR_HEADER]
    assert value.startswith("unknown field Injected: yes x")
    assert not any(ch in value for ch in "\r\n\x00")
    assert len(value) == 512
