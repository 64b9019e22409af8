"""`embedded-nats`: start, status, env, check and stop, with a state folder of the test's own."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from embedded_nats import cli
from embedded_nats.credentials import (
    CredentialsError,
    credentials_file,
    generate_password,
    is_safe_password,
    load_or_create,
)

pytestmark = pytest.mark.timeout(60)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("NATS_URL", "NATS_USER", "NATS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    client, monitor, websocket = _free_ports(3)
    monkeypatch.setenv("TRAINING_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("NATS_PORT", str(client))
    monkeypatch.setenv("NATS_MONITOR_PORT", str(monitor))
    monkeypatch.setenv("NATS_WS_PORT", str(websocket))
    return tmp_path


def test_start_status_env_stop(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 1  # nothing runs yet
    assert cli.main(["start"]) == 0
    try:
        assert "running at nats://127.0.0.1:" in capsys.readouterr().out
        assert cli.main(["start"]) == 0
        assert "already running" in capsys.readouterr().out
        assert cli.main(["status"]) == 0
        assert " up" in capsys.readouterr().out

        assert cli.main(["env", "--role", "observer"]) == 0
        exports = capsys.readouterr().out
        password = json.loads(credentials_file(state).read_text())["observer"]
        assert "export NATS_USER=observer" in exports
        assert f"export NATS_PASSWORD={password}" in exports
        assert stat.S_IMODE(credentials_file(state).stat().st_mode) == 0o600
    finally:
        assert cli.main(["stop"]) == 0
    assert "stopped nats-server" in capsys.readouterr().out
    assert cli.main(["stop"]) == 0
    assert "not running" in capsys.readouterr().out


def test_check_validates_the_shipped_config(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check"]) == 0
    assert "is valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad", ["-starts-with-dash", "12345678", "true", "with space", "Ab#comment"]
)
def test_a_password_the_config_cannot_carry_is_refused(
    bad: str, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_BACKEND_PASSWORD", bad)
    with pytest.raises(CredentialsError, match="NATS_BACKEND_PASSWORD"):
        load_or_create(state)


def test_unreadable_stored_passwords_are_made_anew(state: Path) -> None:
    credentials_file(state).write_text(json.dumps({"backend": "-x1", "observer": "Goodpassword1"}))
    passwords = load_or_create(state)
    assert passwords["observer"] == "Goodpassword1"
    assert passwords["backend"] != "-x1"
    assert all(is_safe_password(p) for p in passwords.values())


def test_generated_passwords_always_start_the_server(state: Path) -> None:
    # Before: about 1 in 64 generated passwords began with "-" and nats-server
    # refused its own configuration. Every generated one is safe by construction.
    assert all(is_safe_password(generate_password()) for _ in range(2000))
    assert cli.main(["check"]) == 0
