"""A throw-away nats-server with the project's config for benchmarks."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embedded_nats import BusEndpoint, NatsServer, Role

ROLES: tuple[Role, ...] = ("backend", "host_trainer", "observer")


@contextmanager
def bench_server() -> Iterator[dict[Role, BusEndpoint]]:
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as tmp:
        passwords: dict[Role, str] = {role: secrets.token_urlsafe(16) for role in ROLES}
        server = NatsServer(store_dir=Path(tmp) / "js", passwords=passwords)
        with server:
            yield {role: BusEndpoint(server.url, role, passwords[role]) for role in ROLES}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
