"""ops/ping.py against a real nats-server and a real nats.micro service."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.micro import add_service

from .helpers import OPS

sys.path.insert(0, str(OPS))
import ping


@pytest.fixture
async def service_name(nats_bus: Any) -> AsyncIterator[str]:
    """A micro service of a name no other test uses, run as the host trainer."""
    name = f"training-host-{secrets.token_hex(3)}"
    nc = await nats_bus.connect("host_trainer", name="ops-ping-test")
    service = await add_service(nc, name=name, version="9.9.9")
    await asyncio.sleep(0)
    await nc.flush()
    try:
        yield name
    finally:
        await service.stop()
        await nc.close()


async def test_ping_finds_the_service_as_observer(nats_bus: Any, service_name: str) -> None:
    replies = await ping.ping(nats_bus.endpoint("observer"), service_name, timeout_s=2)
    assert [(r["name"], r["version"]) for r in replies] == [(service_name, "9.9.9")]


async def test_ping_without_a_service_answers_at_once(nats_bus: Any) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await ping.ping(nats_bus.endpoint("observer"), "nobody-here", timeout_s=5)
    assert replies == []
    assert loop.time() - started < 2  # the server's no-responders, not the timeout


async def test_ping_script_exit_codes(nats_bus: Any, service_name: str) -> None:
    endpoint = nats_bus.endpoint("observer")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    env.update(NATS_URL=endpoint.url, NATS_USER="observer", NATS_PASSWORD=endpoint.password or "")

    async def run(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(OPS / "ping.py"), *args,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        return process.returncode or 0, out.decode()

    code, out = await run("--service", service_name)
    assert code == 0, out
    assert f"{service_name} 9.9.9 id=" in out
    assert endpoint.password not in out


def test_ping_main_fails_without_a_service(
    nats_bus: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = nats_bus.endpoint("observer")
    monkeypatch.setenv("NATS_URL", endpoint.url)
    monkeypatch.setenv("NATS_USER", "observer")
    monkeypatch.setenv("NATS_PASSWORD", endpoint.password or "")
    assert ping.main(["--service", "nobody-here", "--timeout", "1"]) == 1
    assert "no nobody-here service answered" in capsys.readouterr().out


def test_ping_main_fails_without_a_bus(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("NATS_USER", "observer")
    monkeypatch.setenv("NATS_PASSWORD", "x")
    assert ping.main(["--timeout", "1"]) == 1
    assert "no bus" in capsys.readouterr().out
