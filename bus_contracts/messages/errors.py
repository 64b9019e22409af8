"""The error reply every endpoint may answer instead of its success message."""

from __future__ import annotations

from typing import Any

import msgspec

from bus_contracts.base import Reply


class ErrorReply(Reply, frozen=True, kw_only=True, tag="error"):
    """``code`` follows HTTP: 400 invalid, 404 unknown, 409 conflict, 413 too large,
    503 at capacity, 500 internal (then ``error_id`` is in the host's log)."""

    code: int
    message: str
    field: str | None = None
    error_id: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)
