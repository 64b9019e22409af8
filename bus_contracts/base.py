"""Base Structs for everything on the wire.

Requests are strict (an unknown field is an error, so a typo like ``epoch`` is
never silently ignored); replies and events are tolerant (a newer peer may add
optional fields). Every message carries an explicit ``type`` tag, so renaming a
class never changes the wire, and a ``schema_version``.
"""

from __future__ import annotations

import msgspec

SCHEMA_VERSION = 1


class Request(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    """A message a client sends; decoded strictly."""

    schema_version: int = SCHEMA_VERSION


class Reply(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A message a service answers or publishes; decoded tolerantly."""

    schema_version: int = SCHEMA_VERSION


class Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A nested part of a request (no tag of its own); strict like its request."""
