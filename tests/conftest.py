"""Shared fixtures: one real nats-server for the session, isolation per test.

The server runs the project's own nats-server.conf, with its subjects moved one
token deeper (``*.training``), so each test gets a root of its own
(``t<hex>.training``) under exactly the production permissions. Tests that
restart or kill the server use ``private_nats`` instead.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client

from bus_contracts.subjects import Subjects
from embedded_nats import BusEndpoint, NatsServer, Role, connect, render_config
from embedded_nats.credentials import generate_password
from host_trainer.child import HostTrainerProcess
from tests.hosts import start_host

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"


@dataclass(frozen=True)
class Bus:
    """A running test server and how to reach it as each user."""

    server: NatsServer
    passwords: dict[Role, str]

    @property
    def url(self) -> str:
        return self.server.url

    def endpoint(self, role: Role) -> BusEndpoint:
        return BusEndpoint(url=self.server.url, user=role, password=self.passwords[role])

    async def connect(self, role: Role, name: str = "test") -> Client:
        return await connect(self.endpoint(role), name=f"{name}-{role}", connect_timeout_s=5)


def start_bus(tmp: Path, *, root_pattern: str = "*.training") -> Bus:
    passwords: dict[Role, str] = {
        "backend": generate_password(),
        "host_trainer": generate_password(),
        "observer": generate_password(),
    }
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "nats-server.conf"
    config.write_text(render_config(root_pattern))
    server = NatsServer(
        store_dir=tmp / "jetstream",
        passwords=passwords,
        config=config,
        log_file=tmp / "nats-server.log",
    )
    server.start()
    return Bus(server=server, passwords=passwords)


@pytest.fixture(scope="session")
def nats_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    bus = start_bus(tmp_path_factory.mktemp("nats"))
    try:
        yield bus
    finally:
        bus.server.stop()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[Bus]:
    """A server of this test's own, to restart or kill."""
    bus = start_bus(tmp_path / "nats")
    try:
        yield bus
    finally:
        bus.server.stop()


@pytest.fixture
def subjects() -> Subjects:
    """A subject root (and JetStream names) no other test uses."""
    return Subjects(root=f"t{secrets.token_hex(4)}.training")


@pytest.fixture
async def backend_nc(nats_bus: Bus) -> AsyncIterator[Client]:
    nc = await nats_bus.connect("backend")
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def host_nc(nats_bus: Bus) -> AsyncIterator[Client]:
    nc = await nats_bus.connect("host_trainer")
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def data_dir() -> Path:
    return DATA_DIR


class HostFactory:
    """Starts host trainers for one test and ends every one of them afterwards."""

    def __init__(self, bus: Bus, subjects: Subjects, work_dir: Path) -> None:
        self._bus = bus
        self._subjects = subjects
        self._work_dir = work_dir
        self.started: list[HostTrainerProcess] = []

    async def __call__(self, host_id: str = "host-a", **settings: str) -> HostTrainerProcess:
        host = start_host(
            url=self._bus.url,
            password=self._bus.passwords["host_trainer"],
            subjects=self._subjects,
            work_dir=self._work_dir,
            host_id=host_id,
            **settings,
        )
        self.started.append(host)
        nc = await self._bus.connect("backend", name="host-ready")
        try:
            await host.wait_ready(nc)
        finally:
            await nc.close()
        return host


@pytest.fixture
async def host_trainer(
    nats_bus: Bus, subjects: Subjects, tmp_path: Path
) -> AsyncIterator[HostFactory]:
    """``await host_trainer(max_concurrent_jobs="2")`` starts a real host trainer."""
    factory = HostFactory(nats_bus, subjects, tmp_path)
    try:
        yield factory
    finally:
        for host in factory.started:
            host.stop()
