"""How clients find the bus and connect to it, with a bounded connect time.

The URL comes from ``NATS_URL``, else from the running embedded server's state
file, else ``NATS_HOST``/``NATS_PORT`` (default 127.0.0.1:4222). The user and password come from
``NATS_USER``/``NATS_PASSWORD``, else from the credentials file for the role.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from embedded_nats import credentials
from embedded_nats.credentials import Role
from embedded_nats.paths import state_dir

log = logging.getLogger(__name__)

SERVER_INFO_FILE_NAME = "nats-server.json"


class BusUnreachable(ConnectionError):
    """The NATS server could not be reached within the connect bound."""

    def __init__(self, url: str, timeout_s: float, cause: BaseException | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        detail = f": {cause}" if cause is not None and str(cause) else ""
        super().__init__(f"NATS at {url} not reachable within {timeout_s:g} s{detail}")


class BusAuthRefused(BusUnreachable):
    """The server refused the user or password."""

    def __init__(self, url: str, user: str | None) -> None:
        self.user = user
        ConnectionError.__init__(self, f"NATS at {url} refused user {user or '(anonymous)'}")
        self.url = url
        self.timeout_s = 0.0


@dataclass(frozen=True, slots=True)
class BusEndpoint:
    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, role: Role, base: Path | None = None) -> BusEndpoint:
        base = base or state_dir()
        url = os.environ.get("NATS_URL") or _url_from_state(base) or _url_from_settings()
        user = os.environ.get("NATS_USER") or role
        password = os.environ.get("NATS_PASSWORD")
        if password is None and user == role:
            password = os.environ.get(credentials.env_var(role))
            if password is None and credentials.credentials_file(base).exists():
                password = credentials.load_or_create(base)[role]
        return cls(url=url, user=user, password=password)


def _url_from_settings() -> str:
    """Where the project's server listens when started with this environment."""
    host = os.environ.get("NATS_HOST", "127.0.0.1")
    if host in {"0.0.0.0", "::"}:  # listening everywhere: reach it on loopback
        host = "127.0.0.1"
    return f"nats://{host}:{os.environ.get('NATS_PORT', '4222')}"


def _url_from_state(base: Path) -> str | None:
    path = base / SERVER_INFO_FILE_NAME
    try:
        url = json.loads(path.read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None
    return str(url)


async def connect(
    endpoint: BusEndpoint,
    *,
    name: str,
    connect_timeout_s: float = 1.0,
    reconnect: bool = True,
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
    fail_fast: bool = False,
    **options: Any,
) -> Client:
    """Connect within ``connect_timeout_s`` or raise :class:`BusUnreachable`.

    nats-py's own connect retries a down server for minutes, even with
    reconnects off; here the first connection is bounded, and once connected a
    long-lived client reconnects for ever (``reconnect=True``). A refused
    password raises :class:`BusAuthRefused` at once; with ``fail_fast`` the first
    failed attempt (connection refused) raises :class:`BusUnreachable` at once.
    """

    first_error: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
    repeats = _RepeatFilter()

    async def _on_error(exc: Exception) -> None:
        # While connecting, a refused password never turns good, and with
        # fail_fast a refused connection means "down now": stop retrying.
        if not first_error.done() and (fail_fast or _is_auth_error(exc)):
            first_error.set_result(exc)
        if error_cb is not None:
            await error_cb(exc)
        else:
            # A reconnect loop fails every 250 ms: say it once, then now and then.
            level = logging.WARNING if repeats.is_news(str(exc)) else logging.DEBUG
            log.log(level, "nats.error client=%s error=%s", name, exc)

    async def _disconnected() -> None:
        if client.is_closed or client.is_draining:
            return  # our own close(), not an outage
        log.warning("nats.disconnected client=%s url=%s", name, endpoint.url)

    async def _reconnected() -> None:
        log.info("nats.reconnected client=%s url=%s", name, endpoint.url)

    client = Client()
    connecting = asyncio.ensure_future(
        client.connect(
            servers=[endpoint.url],
            user=endpoint.user,
            password=endpoint.password,
            name=name,
            connect_timeout=connect_timeout_s,  # type: ignore[arg-type] # annotated int, takes seconds as float
            allow_reconnect=reconnect,
            max_reconnect_attempts=-1 if reconnect else 0,
            reconnect_time_wait=0.25,  # type: ignore[arg-type]
            error_cb=_on_error,
            disconnected_cb=_disconnected,
            reconnected_cb=_reconnected,
            **options,
        )
    )
    waiters: set[asyncio.Future[Any]] = {connecting, first_error}
    done, _ = await asyncio.wait(
        waiters, timeout=connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    if connecting in done and connecting.exception() is None:
        first_error.cancel()
        return client
    connecting.cancel()
    cause: BaseException | None = None
    if first_error.done() and not first_error.cancelled():
        cause = first_error.result()
    elif connecting.done() and not connecting.cancelled():
        cause = connecting.exception()
    first_error.cancel()
    await asyncio.gather(connecting, return_exceptions=True)
    # A cancelled connect leaves its socket open: close it, or it leaks.
    with contextlib.suppress(Exception):
        await client.close()
    if cause is not None and _is_auth_error(cause):
        raise BusAuthRefused(endpoint.url, endpoint.user) from cause
    raise BusUnreachable(endpoint.url, connect_timeout_s, cause) from cause


class _RepeatFilter:
    """True for a message not seen in the last ``quiet_s`` seconds."""

    def __init__(self, quiet_s: float = 30.0) -> None:
        self._quiet_s = quiet_s
        self._last: dict[str, float] = {}

    def is_news(self, message: str) -> bool:
        now = time.monotonic()
        news = now - self._last.get(message, -self._quiet_s - 1) > self._quiet_s
        if news:
            self._last[message] = now
        return news


def _is_auth_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "authorization violation" in text or "authentication" in text
