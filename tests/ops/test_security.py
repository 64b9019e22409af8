"""Secure by default: loopback only, no anonymous access, no secret in a unit
file, a plist or a command line, the credentials file readable by its owner."""

from __future__ import annotations

import contextlib
import os
import plistlib
import socket
import stat
import subprocess
from pathlib import Path

import psutil
import pytest

from embedded_nats import credentials

from .helpers import PROJECT_ROOT, render

VENV_BIN = PROJECT_ROOT / ".venv" / "bin"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = credentials.load_or_create(state)
    path = credentials.credentials_file(state)
    assert mode(path) == 0o600
    assert mode(state) == 0o700
    assert set(first) == {"backend", "host_trainer", "observer"}
    assert len(set(first.values())) == 3
    # Read again: the same passwords, still 0600.
    assert credentials.load_or_create(state) == first
    assert mode(path) == 0o600


def test_no_secret_in_any_rendered_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    passwords = credentials.load_or_create(state)
    layout = render.Layout(
        checkout=PROJECT_ROOT,
        venv=PROJECT_ROOT / ".venv",
        state_dir=state,
        home=tmp_path,
        xdg_config_home=tmp_path / ".config",
    )
    for manager in ("systemd", "launchd"):
        options = render.Options(
            manager=manager,  # type: ignore[arg-type]
            env=(("NATS_HOST", "172.17.0.1"),),
            trainer_config=tmp_path / "host.toml",
        )
        for path, text in render.render_all(layout, options).items():
            for password in passwords.values():
                assert password not in text, path
            if manager == "launchd":
                plist = plistlib.loads(text.encode())
                argv = plist["ProgramArguments"]
                names = set(plist["EnvironmentVariables"])
            else:
                argv = next(
                    line for line in text.splitlines() if line.startswith("ExecStart=")
                ).split()
                names = {
                    line.split("=", 2)[1]
                    for line in text.splitlines()
                    if line.startswith("Environment=")
                }
            # What `ps` would show: programs, subcommands and paths, no credentials.
            assert not any("pass" in arg.lower() or "--user" in arg for arg in argv), argv
            assert not any("PASSWORD" in name for name in names), names


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def anonymous_reply(host: str, port: int) -> str:
    """What the server answers a client that gives no user or password."""
    with (
        socket.create_connection((host, port), timeout=5) as sock,
        sock.makefile("rb") as reader,
    ):
        assert reader.readline().startswith(b"INFO ")
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        return reader.readline().decode()


def test_embedded_server_listens_on_loopback_only_and_keeps_passwords_off_argv(
    tmp_path: Path,
) -> None:
    """What `ops/start-all` (and the nats unit) runs, with nothing configured."""
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "TRAINING_"))}
    env["TRAINING_STATE_DIR"] = str(state)
    cli = str(VENV_BIN / "embedded-nats")
    for _attempt in range(3):  # a free port may be taken by someone else meanwhile
        client_port, monitor_port, ws_port = free_ports(3)
        env.update(
            NATS_PORT=str(client_port),
            NATS_MONITOR_PORT=str(monitor_port),
            NATS_WS_PORT=str(ws_port),
        )
        started = subprocess.run(
            [cli, "start"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if started.returncode == 0:
            break
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        info = (state / "nats-server.json").read_text()
        pid = int(info.split('"pid": ')[1].split("}")[0].split(",")[0])
        process = psutil.Process(pid)
        listening = {
            (conn.laddr.ip, conn.laddr.port)
            for conn in process.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
        assert {port for _, port in listening} == {client_port, monitor_port, ws_port}
        assert {ip for ip, _ in listening} == {"127.0.0.1"}
        argv = " ".join(process.cmdline())
        for password in credentials.load_or_create(state).values():
            assert password not in argv
        assert mode(state / "credentials.json") == 0o600
        reply = anonymous_reply("127.0.0.1", client_port)
        assert reply.startswith("-ERR 'Authorization Violation'"), reply
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            server = psutil.Process(pid)
            server.terminate()
            server.wait(5)


def test_host_trainer_metrics_listen_on_loopback_by_default() -> None:
    config = pytest.importorskip("host_trainer.config")
    defaults = config.HostConfig()
    assert defaults.metrics_host == "127.0.0.1"
    assert defaults.metrics_port == 9464
