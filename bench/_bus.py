"""A throw-away nats-server and host trainers for benchmarks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedded_nats import BusEndpoint, NatsServer, Role, render_config
from embedded_nats.credentials import generate_password
from embedded_nats.paths import PROJECT_ROOT
from host_trainer.child import HostTrainerProcess

ROLES: tuple[Role, ...] = ("backend", "host_trainer", "observer")
DATA_DIR = PROJECT_ROOT / "data"


@dataclass(frozen=True)
class BenchBus:
    server: NatsServer
    endpoints: dict[Role, BusEndpoint]
    work_dir: Path

    def host(self, host_id: str, root: str, **settings: str) -> HostTrainerProcess:
        from bus_contracts.subjects import Subjects

        return HostTrainerProcess(
            url=self.server.url,
            password=self.endpoints["host_trainer"].password or "",
            work_dir=self.work_dir,
            host_id=host_id,
            subjects=Subjects(root),
            settings={"data_dir": str(DATA_DIR), "metrics_port": "-1", **settings},
        )


@contextmanager
def bench_server(*, subject_roots: str = "training") -> Iterator[BenchBus]:
    """The project's config; with ``subject_roots="*.training"`` several roots share it."""
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as tmp:
        work = Path(tmp)
        config = work / "nats-server.conf"
        config.write_text(render_config(subject_roots))
        passwords: dict[Role, str] = {role: generate_password() for role in ROLES}
        server = NatsServer(store_dir=work / "js", passwords=passwords, config=config)
        with server:
            endpoints = {role: BusEndpoint(server.url, role, passwords[role]) for role in ROLES}
            yield BenchBus(server=server, endpoints=endpoints, work_dir=work)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def quick_request(task_id: str, epochs: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "symbols": ["SPX"],
        "timeframe": "1d",
        "start_date": "2014-01-01",
        "device": "cpu",
        "strategy": {"training": {"epochs": epochs, "early_stopping": {"enabled": False}}},
        **extra,
    }
