"""The project's nats-server.conf, started for real: auth and least privilege."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from embedded_nats import CONFIG_FILE, BusAuthRefused, BusEndpoint, NatsServer, Role, connect
from embedded_nats.credentials import generate_password

pytestmark = pytest.mark.timeout(30)


class Violations:
    """Collects the asynchronous permission errors nats-py reports to error_cb."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._seen = asyncio.Event()

    async def __call__(self, exc: Exception) -> None:
        self.errors.append(str(exc))
        self._seen.set()

    async def wait_for(self, fragment: str, timeout_s: float = 2.0) -> str:
        async def _match() -> str:
            while True:
                for error in self.errors:
                    if fragment.lower() in error.lower():
                        return error
                self._seen.clear()
                await self._seen.wait()

        return await asyncio.wait_for(_match(), timeout_s)


@pytest.fixture(scope="module")
def production_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """nats-server.conf exactly as shipped (random ports)."""
    tmp = tmp_path_factory.mktemp("prod-nats")
    server = NatsServer(
        store_dir=tmp / "js",
        passwords={role: generate_password() for role in ("backend", "host_trainer", "observer")},  # type: ignore[misc]
        config=CONFIG_FILE,
        log_file=tmp / "nats.log",
    )
    server.start()
    yield server
    server.stop()


async def _connect(server: NatsServer, role: Role) -> tuple[Client, Violations]:
    violations = Violations()
    password = server.environment()[f"NATS_{role.upper()}_PASSWORD"]
    nc = await connect(
        BusEndpoint(server.url, role, password), name=f"perm-{role}", error_cb=violations
    )
    return nc, violations


@pytest.fixture
async def clients(
    production_server: NatsServer,
) -> AsyncIterator[dict[Role, tuple[Client, Violations]]]:
    made = {
        role: await _connect(production_server, role)
        for role in ("backend", "host_trainer", "observer")
    }
    yield made  # type: ignore[misc]
    for nc, _ in made.values():
        await nc.close()


def test_shipped_config_passes_nats_server_check(production_server: NatsServer) -> None:
    result = production_server.check_config()
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr


async def test_anonymous_and_wrong_password_are_refused(production_server: NatsServer) -> None:
    with pytest.raises(BusAuthRefused, match="anonymous"):
        await connect(BusEndpoint(production_server.url), name="anon")
    with pytest.raises(BusAuthRefused, match="backend"):
        await connect(BusEndpoint(production_server.url, "backend", "wrong"), name="bad")


async def test_backend_requests_start_answered_by_host_trainer(
    clients: dict[Role, tuple[Client, Violations]],
) -> None:
    backend, _ = clients["backend"]
    host, _ = clients["host_trainer"]

    async def answer(msg: object) -> None:
        await msg.respond(b'{"ok":true}')  # type: ignore[attr-defined]

    await host.subscribe("training.start", queue="training-hosts", cb=answer)
    await host.flush()
    await asyncio.sleep(0)
    await host.flush()
    reply = await backend.request("training.start", b"{}", timeout=2)
    assert reply.data == b'{"ok":true}'


async def test_host_trainer_cannot_publish_start(
    clients: dict[Role, tuple[Client, Violations]],
) -> None:
    host, violations = clients["host_trainer"]
    await host.publish("training.start", b"{}")
    await host.flush()
    error = await violations.wait_for("Permissions Violation")
    assert "training.start" in error


async def test_backend_cannot_take_jobs(clients: dict[Role, tuple[Client, Violations]]) -> None:
    backend, violations = clients["backend"]
    await backend.subscribe("training.start")
    await backend.flush()
    error = await violations.wait_for("Subscription")
    assert "training.start" in error


@pytest.mark.parametrize(
    "subject", ["training.start", "training.stop.x", "training.progress.x", "$KV.TRAINING_JOBS.x"]
)
async def test_observer_cannot_publish(
    clients: dict[Role, tuple[Client, Violations]], subject: str
) -> None:
    observer, violations = clients["observer"]
    await observer.publish(subject, b"{}")
    await observer.flush()
    error = await violations.wait_for("Permissions Violation")
    assert subject.lower() in error.lower()


async def test_observer_watches_progress(clients: dict[Role, tuple[Client, Violations]]) -> None:
    observer, violations = clients["observer"]
    host, _ = clients["host_trainer"]
    sub = await observer.subscribe("training.progress.>")
    await observer.flush()
    await asyncio.sleep(0)
    await observer.flush()
    await host.publish("training.progress.job-1", b'{"seq":1}')
    msg = await sub.next_msg(timeout=2)
    assert msg.subject == "training.progress.job-1"
    assert violations.errors == []


@pytest.mark.parametrize("subject", ["training.status.job-1", "training.jobs", "training.health"])
async def test_observer_may_ask(
    clients: dict[Role, tuple[Client, Violations]], subject: str
) -> None:
    observer, violations = clients["observer"]
    host, _ = clients["host_trainer"]

    async def answer(msg: object) -> None:
        await msg.respond(b"{}")  # type: ignore[attr-defined]

    sub = await host.subscribe(subject, cb=answer)
    await host.flush()
    await asyncio.sleep(0)
    await host.flush()
    reply = await observer.request(subject, b"", timeout=2)
    assert reply.data == b"{}"
    await sub.unsubscribe()
    assert violations.errors == []


def test_default_addresses_are_loopback() -> None:
    text = Path(CONFIG_FILE).read_text()
    assert "host: $NATS_HOST" in text
    server = NatsServer(
        store_dir=Path("/nonexistent"),
        passwords={"backend": "a", "host_trainer": "b", "observer": "c"},
    )
    assert server.environment()["NATS_HOST"] == "127.0.0.1"


@pytest.mark.parametrize("role", ["backend", "host_trainer", "observer"])
@pytest.mark.parametrize(
    "api",
    [
        "$JS.API.STREAM.DELETE.KV_TRAINING_JOBS",
        "$JS.API.STREAM.PURGE.TRAINING_PROGRESS",
        "$JS.API.STREAM.UPDATE.OBJ_TRAINING_MODELS",
    ],
)
async def test_nobody_deletes_purges_or_reconfigures_the_registry(
    clients: dict[Role, tuple[Client, Violations]], role: Role, api: str
) -> None:
    nc, violations = clients[role]
    await nc.publish(api, b"{}")
    await nc.flush()
    error = await violations.wait_for("Permissions Violation")
    assert api.lower() in error.lower()


async def test_observer_may_ask_performance(clients: dict[Role, tuple[Client, Violations]]) -> None:
    observer, violations = clients["observer"]
    host, _ = clients["host_trainer"]

    async def answer(msg: object) -> None:
        await msg.respond(b"{}")  # type: ignore[attr-defined]

    sub = await host.subscribe("training.performance.job-1", cb=answer)
    await host.flush()
    await asyncio.sleep(0)
    await host.flush()
    assert (await observer.request("training.performance.job-1", b"", timeout=2)).data == b"{}"
    await sub.unsubscribe()
    assert violations.errors == []
