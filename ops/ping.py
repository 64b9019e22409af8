"""Micro PING of the host trainers: ``$SRV.PING.training-host`` over NATS.

Every running instance answers (several GPU hosts share one bus); this prints
one line per answer and exits 0 when at least one answered, 1 otherwise. It
connects as the read-only ``observer`` user, with the password from the
environment or the 0600 credentials file, never from the command line.

    ops/ping.py [--service training-host] [--timeout 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from embedded_nats import BusEndpoint, BusUnreachable, connect

DEFAULT_SERVICE = "training-host"


async def ping(
    endpoint: BusEndpoint,
    service: str = DEFAULT_SERVICE,
    *,
    timeout_s: float = 2.0,
    gather_s: float = 0.25,
) -> list[dict[str, Any]]:
    """The PING replies: all that arrive within ``gather_s`` after the first."""

    async def quiet(exc: Exception) -> None:
        """Connection errors end up in the one line main() prints, not as logs."""

    nc = await connect(
        endpoint, name="ops-ping", connect_timeout_s=timeout_s, fail_fast=True, error_cb=quiet
    )
    try:
        inbox = nc.new_inbox()
        replies: list[dict[str, Any]] = []
        first = asyncio.Event()
        started = time.perf_counter()

        async def on_reply(msg: Any) -> None:
            if msg.headers and msg.headers.get("Status") == "503":
                first.set()  # no responders: the server says so at once
                return
            try:
                reply = json.loads(msg.data)
            except ValueError:
                return
            if not isinstance(reply, dict):
                return
            reply["rtt_ms"] = (time.perf_counter() - started) * 1000
            replies.append(reply)
            first.set()

        sub = await nc.subscribe(inbox, cb=on_reply)
        await asyncio.sleep(0)  # see PITFALLS: let the SUB go out before the PING
        await nc.flush()
        started = time.perf_counter()
        await nc.publish(f"$SRV.PING.{service}", b"", reply=inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first.wait(), timeout_s)
        if replies:
            await asyncio.sleep(gather_s)
        await sub.unsubscribe()
        return replies
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/ping.py", description=__doc__.split("\n")[0])
    parser.add_argument("--service", default=DEFAULT_SERVICE)
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    endpoint = BusEndpoint.from_environment("observer")
    try:
        replies = asyncio.run(ping(endpoint, args.service, timeout_s=args.timeout))
    except BusUnreachable as exc:
        print(f"no bus: {exc}")
        return 1
    if not replies:
        print(f"no {args.service} service answered on {endpoint.url} within {args.timeout:g} s")
        return 1
    for reply in replies:
        print(
            f"{reply.get('name')} {reply.get('version')} id={reply.get('id')} "
            f"rtt={reply['rtt_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
