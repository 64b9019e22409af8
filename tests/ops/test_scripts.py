"""start-all, stop-all, status and reload: with services installed (the service
manager is faked) and without (background processes, faked programs)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Sandbox, make_sandbox

UNITS = ["training-nats.service", "training-host.service"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(tmp_path)
    yield box
    if any((box.state / name).exists() for name in ("host-trainer.pid", "nats-server.json")):
        box.run("stop-all", check=False)  # never leave a process behind


def alive(pid: int) -> bool:
    """Running, not a zombie (an orphan that this container's init may never reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def trainer_pid(sandbox: Sandbox) -> int:
    return int((sandbox.state / "host-trainer.pid").read_text())


def test_background_start_status_stop(sandbox: Sandbox) -> None:
    out = sandbox.run("start-all").stdout
    assert "host trainer running" in out
    pid = trainer_pid(sandbox)
    assert alive(pid)
    nats_pid = int(json.loads((sandbox.state / "nats-server.json").read_text())["pid"])
    assert alive(nats_pid)
    seen = (sandbox.root / "serve-seen").read_text()
    assert f"state={sandbox.state}" in seen
    assert seen.startswith("argv=serve\n")
    assert (sandbox.state / "logs").stat().st_mode & 0o077 == 0

    # Starting again starts nothing new.
    assert "already running" in sandbox.run("start-all").stdout
    assert trainer_pid(sandbox) == pid

    status = sandbox.run("status")
    assert "mode:        processes" in status.stdout
    assert f"host-trainer: running (pid {pid})" in status.stdout
    assert "health:      ok" in status.stdout
    assert "ping:        ok" in status.stdout

    (sandbox.root / "health-rc").write_text("1")
    status = sandbox.run("status", check=False)
    assert status.returncode == 1
    assert "health:      FAILED" in status.stdout
    (sandbox.root / "health-rc").write_text("0")
    (sandbox.root / "ping-rc").write_text("1")
    assert sandbox.run("status", check=False).returncode == 1

    sandbox.run("reload")
    out = sandbox.run("stop-all").stdout
    assert f"stopped host trainer (pid {pid})" in out
    assert "stopped nats-server" in out
    assert not alive(pid)
    assert not alive(nats_pid)
    assert not (sandbox.state / "host-trainer.pid").exists()
    assert not (sandbox.state / "nats-server.json").exists()
    assert "host trainer not running" in sandbox.run("stop-all").stdout


def test_stop_all_kills_a_trainer_that_ignores_sigterm(sandbox: Sandbox) -> None:
    (sandbox.root / "ignore-term").write_text("")
    sandbox.env["STOP_TIMEOUT_S"] = "0.3"
    sandbox.run("start-all")
    pid = trainer_pid(sandbox)
    result = sandbox.run("stop-all")
    assert "killing it" in result.stderr
    assert not alive(pid)


def test_a_recycled_pid_is_never_taken_for_the_trainer(sandbox: Sandbox) -> None:
    sandbox.state.mkdir()
    # Our own pid: alive, but not a host trainer.
    (sandbox.state / "host-trainer.pid").write_text(str(os.getpid()))
    out = sandbox.run("stop-all").stdout
    assert "host trainer not running" in out


def test_start_all_reports_a_trainer_that_dies_at_once(sandbox: Sandbox) -> None:
    trainer = sandbox.venv / "bin" / "host-trainer"
    trainer.write_text('#!/usr/bin/env bash\necho "config: bad key foo" >&2\nexit 2\n')
    result = sandbox.run("start-all", check=False)
    assert result.returncode == 1
    assert "config: bad key foo" in result.stderr
    assert not (sandbox.state / "host-trainer.pid").exists()


def test_config_file_is_passed_to_serve(sandbox: Sandbox) -> None:
    sandbox.env["HOST_TRAINER_CONFIG"] = "/etc/host trainer.toml"
    sandbox.run("start-all")
    seen = (sandbox.root / "serve-seen").read_text()
    assert "argv=serve --config /etc/host trainer.toml\n" in seen


def test_with_systemd_services_installed(sandbox: Sandbox) -> None:
    sandbox.run("install", "--manager", "systemd", "--no-start")
    sandbox.clear_calls()
    sandbox.run("start-all")
    sandbox.run("reload")
    status = sandbox.run("status")
    sandbox.run("stop-all")
    assert sandbox.calls() == [
        "systemctl --user start " + " ".join(UNITS),
        "systemctl --user reload training-host.service",
        "systemctl --user is-active training-nats.service",
        "systemctl --user is-active training-host.service",
        "host-trainer check",
        "systemctl --user stop " + " ".join(reversed(UNITS)),
    ]
    assert "training-host: active" in status.stdout
    assert not (sandbox.state / "host-trainer.pid").exists()


def test_with_launchd_agents_installed(sandbox: Sandbox) -> None:
    sandbox.run("install", "--manager", "launchd", "--no-start")
    sandbox.clear_calls()
    sandbox.run("start-all")
    sandbox.run("reload")
    sandbox.run("stop-all")
    domain = f"gui/{os.getuid()}"
    agents = sandbox.home / "Library" / "LaunchAgents"
    nats, trainer = "local.gpu-training-host.nats-server", "local.gpu-training-host.host-trainer"
    assert sandbox.calls() == [
        f"launchctl print {domain}/{nats}",
        f"launchctl bootstrap {domain} {agents / nats}.plist",
        f"launchctl print {domain}/{trainer}",
        f"launchctl bootstrap {domain} {agents / trainer}.plist",
        f"launchctl kill SIGHUP {domain}/{trainer}",
        f"launchctl bootout {domain}/{trainer}",
        f"launchctl bootout {domain}/{nats}",
    ]


def test_uninstall_stops_background_processes_first(sandbox: Sandbox) -> None:
    sandbox.run("start-all")
    pid = trainer_pid(sandbox)
    sandbox.run("uninstall", "--purge")
    assert not alive(pid)
    assert not sandbox.state.exists()


def test_wait_gives_up_when_the_trainer_stays_unhealthy(sandbox: Sandbox) -> None:
    (sandbox.root / "health-rc").write_text("1")
    started = time.monotonic()
    result = sandbox.run("start-all", "--wait", "0.4", check=False)
    assert result.returncode == 1
    assert "not healthy after 0.4 s" in result.stderr
    assert sum(call == "host-trainer check" for call in sandbox.calls()) >= 1
    assert time.monotonic() - started < 10
