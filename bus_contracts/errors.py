"""The error model: what a bad request raises, and what an error reply becomes.

A service answers an :class:`ErrorReply`; a client turns it back into a
:class:`ServiceError` subclass, so callers catch ``NotFound`` or ``Conflict``
instead of comparing numbers. The code → class table lives only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from bus_contracts.messages.errors import ErrorReply


class ContractError(ValueError):
    """A request that breaks the wire contract, naming the field at fault.

    ``field`` is a dotted path (``strategy.training.epochs``, ``symbols[0]``) or
    None when the whole body is wrong. ``code`` is 400, or 413 for a body that is
    too large.
    """

    def __init__(self, field: str | None, problem: str, *, code: int = 400) -> None:
        self.field = field
        self.problem = problem
        self.code = code
        super().__init__(problem if field is None else f"{field}: {problem}")

    def to_reply(self) -> ErrorReply:
        """The reply a service sends for this request."""
        return ErrorReply(code=self.code, message=str(self), field=self.field)


class ReplyDecodeError(ValueError):
    """A reply or event that is not JSON of any message we know: a broken peer."""


class ServiceError(Exception):
    """An error a service answered, with the code it chose.

    The base class stands for codes this version has no class for (say a 422
    from a newer service); subclasses stand for the codes the design names.
    """

    default_code: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        field: str | None = None,
        error_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = self.default_code if code is None else code
        self.message = message
        self.field = field
        self.error_id = error_id
        self.details: dict[str, Any] = dict(details or {})
        suffix = f" (error id {error_id})" if error_id else ""
        super().__init__(f"[{self.code}] {message}{suffix}")

    @classmethod
    def from_reply(cls, reply: ErrorReply) -> ServiceError:
        """The exception for ``reply``; an unknown 4xx keeps its code on the base
        class, anything else unknown counts as an internal error."""
        kind = _CLASS_BY_CODE.get(reply.code)
        if kind is None:
            kind = ServiceError if 400 <= reply.code < 500 else InternalError
        return kind(
            reply.message,
            code=reply.code,
            field=reply.field,
            error_id=reply.error_id,
            details=reply.details,
        )

    def to_reply(self) -> ErrorReply:
        return ErrorReply(
            code=self.code,
            message=self.message,
            field=self.field,
            error_id=self.error_id,
            details=dict(self.details),
        )


class BadRequest(ServiceError):
    """400: the request is invalid; retrying it anywhere gives the same answer."""

    default_code = 400


class NotFound(ServiceError):
    """404: unknown job, or the data the job needs is missing."""

    default_code = 404


class Conflict(ServiceError):
    """409: the task id exists with another request, or the job is in the wrong state."""

    default_code = 409


class TooLarge(ServiceError):
    """413: the request body is larger than the service accepts."""

    default_code = 413


class AtCapacity(ServiceError):
    """503: the queue is full; another host, or a later try, may accept it."""

    default_code = 503


class InternalError(ServiceError):
    """500: the service failed; ``error_id`` finds the traceback in its log."""

    default_code = 500


_CLASS_BY_CODE: dict[int, type[ServiceError]] = {
    kind.default_code: kind
    for kind in (BadRequest, NotFound, Conflict, TooLarge, AtCapacity, InternalError)
}
