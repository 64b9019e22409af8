"""``host-trainer`` commands: config, check, and serve as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from nats.aio.client import Client

from bus_contracts.messages.progress import Cancelled, Failed, Started
from bus_contracts.subjects import Subjects
from host_trainer import cli
from tests.conftest import Bus, HostFactory
from tests.host.bus_helpers import ProgressCollector, quick_request, request_json

pytestmark = pytest.mark.timeout(120)


def run_cli(
    *args: str, env: dict[str, str], timeout_s: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "host_trainer", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def bus_env(bus: Bus, subjects: Subjects, tmp_path: Path) -> dict[str, str]:
    return {
        "NATS_URL": bus.url,
        "NATS_OBSERVER_PASSWORD": bus.passwords["observer"],
        "TRAINING_STATE_DIR": str(tmp_path / "state"),
        "HOST_TRAINER_SUBJECT_ROOT": subjects.root,
    }


def test_config_command_prints_effective_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "host.toml"
    path.write_text("max_queued_jobs = 3\n")
    monkeypatch.setenv("NATS_URL", "nats://host_trainer:hunter2@127.0.0.1:4222")
    monkeypatch.setenv("HOST_TRAINER_LOG_LEVEL", "warning")
    assert cli.main(["config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["max_queued_jobs"] == 3
    assert shown["log_level"] == "WARNING"
    assert shown["nats_url"] == "nats://host_trainer:***@127.0.0.1:4222"
    assert "hunter2" not in out


def test_invalid_config_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("max_concurrent_jobs = 0\n")
    shown = run_cli("config", "--config", str(path), env={})
    assert shown.returncode == 2
    assert f"{path}: max_concurrent_jobs: must be >= 1" in shown.stderr
    checked = run_cli("check", env={"HOST_TRAINER_CONFIG": str(path)})
    assert checked.returncode == 1
    assert checked.stdout.count("\n") == 1
    assert "max_concurrent_jobs: must be >= 1" in checked.stdout
    served = run_cli("serve", "--config", str(path), env={})
    assert served.returncode == 2
    assert "max_concurrent_jobs: must be >= 1" in served.stderr


def test_check_without_host_fails_fast(nats_bus: Bus, subjects: Subjects, tmp_path: Path) -> None:
    began = time.monotonic()
    result = run_cli("check", env=bus_env(nats_bus, subjects, tmp_path))
    assert result.returncode == 1
    assert result.stdout == f"unhealthy: no host trainer is serving {subjects.health}\n"
    down = run_cli(
        "check", env={**bus_env(nats_bus, subjects, tmp_path), "NATS_URL": "nats://127.0.0.1:9"}
    )
    assert down.returncode == 1
    assert down.stdout == "unhealthy: NATS at nats://127.0.0.1:9 is not reachable\n"
    assert time.monotonic() - began < 10  # two Python start-ups, no waiting


def test_check_refused_password(nats_bus: Bus, subjects: Subjects, tmp_path: Path) -> None:
    # A subprocess: a refused connect leaves nats-py's socket behind in the process.
    env = {**bus_env(nats_bus, subjects, tmp_path), "NATS_OBSERVER_PASSWORD": "wrong"}
    result = run_cli("check", env=env)
    assert result.returncode == 1
    assert result.stdout == f"unhealthy: NATS at {nats_bus.url} refused user observer\n"


def log_value(host_log: str, key: str) -> str:
    match = re.search(rf"{key}=(\S+)", host_log)
    assert match, host_log
    return match.group(1)


async def test_serve_check_reload_metrics_and_sigterm(
    host_trainer: HostFactory,
    nats_bus: Bus,
    backend_nc: Client,
    subjects: Subjects,
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "host-a.toml"  # the file HostFactory passes to serve
    config_file.write_text("max_queued_jobs = 4\n")
    host = await host_trainer(metrics_port="0")

    # check: a healthy host answers
    checked = await asyncio.to_thread(
        run_cli, "check", "--config", str(config_file), env=bus_env(nats_bus, subjects, tmp_path)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok: host host-a version ")

    # the metrics endpoint, on loopback at the port serve chose
    metrics_url = log_value(host.log_text(), "metrics")
    assert metrics_url.startswith("http://127.0.0.1:")
    body = await asyncio.to_thread(
        lambda: urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    )
    assert "training_host_build_info{" in body
    assert 'training_host_request_duration_seconds_count{endpoint="health"}' in body
    assert "process_resident_memory_bytes" in body

    # SIGHUP: reloadable keys apply, others are refused with a log line
    config_file.write_text('max_queued_jobs = 4\nmax_concurrent_jobs = 3\ndefault_device = "cpu"\n')
    host.send(signal.SIGHUP)
    for _ in range(100):
        health, _ = await request_json(backend_nc, subjects.health, {})
        if health["max_concurrent_jobs"] == 3:
            break
        await asyncio.sleep(0.05)
    assert health["max_concurrent_jobs"] == 3
    log_text = host.log_text()
    assert "config.reload_refused key=default_device value=cpu needs=restart" in log_text
    assert 'config.reloaded applied={"max_concurrent_jobs": 3}' in log_text

    # SIGTERM with a job running: the job ends with the reason, the host exits 0 in time
    progress = await ProgressCollector().start(backend_nc, subjects)
    await request_json(backend_nc, subjects.start, quick_request("long", epochs=500))
    await progress.wait_for("long", lambda e: isinstance(e, Started), 60)
    began = time.monotonic()
    code = await asyncio.to_thread(host.stop)
    elapsed = time.monotonic() - began
    assert code == 0, host.log_text()
    assert elapsed < 10
    final = await progress.wait_final("long", timeout_s=5)
    assert isinstance(final, Failed | Cancelled), final
    assert "host shutdown" in str(final)
    assert "host.stopped host_id=host-a" in host.log_text()
    await progress.close()


def serve_env(bus: Bus, tmp_path: Path, root: str) -> dict[str, str]:
    return {
        **os.environ,
        "NATS_URL": bus.url,
        "NATS_USER": "host_trainer",
        "NATS_PASSWORD": bus.passwords["host_trainer"],
        "TRAINING_STATE_DIR": str(tmp_path / "state"),
        "HOST_TRAINER_SUBJECT_ROOT": root,
        "HOST_TRAINER_METRICS_PORT": "-1",
        "HOST_TRAINER_MODELS_DIR": str(tmp_path / "models"),
    }


def test_serve_refuses_a_root_the_bus_does_not_permit(nats_bus: Bus, tmp_path: Path) -> None:
    # the test server lets host_trainer serve only under "*.training"
    result = subprocess.run(
        [sys.executable, "-m", "host_trainer", "serve"],
        env=serve_env(nats_bus, tmp_path, "elsewhere"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert (
        "host.start_failed error=NATS user host_trainer may not subscribe to elsewhere.start"
        in (result.stderr)
    )


def test_serve_waits_for_the_bus_and_stops_on_sigterm(nats_bus: Bus, tmp_path: Path) -> None:
    env = {**serve_env(nats_bus, tmp_path, "t0.training"), "NATS_URL": "nats://127.0.0.1:9"}
    process = subprocess.Popen(
        [sys.executable, "-m", "host_trainer", "serve"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "nats.unreachable" in line:
                break
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - began < 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
