"""The containerised-backend example in ops/docker, checked without Docker."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from embedded_nats import credentials

from . import miniyaml
from .helpers import OPS, Sandbox, installer, make_sandbox

DOCKER = OPS / "docker"
ENV_KEYS = {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "USE_TRAINING_HOST_SERVICE"}


def read_env_file(path: Path) -> dict[str, str]:
    """docker compose env_file syntax: KEY=VALUE lines, # comments."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key == key.strip() and key not in values, line
        values[key] = value
    return values


def test_compose_example_reaches_the_host_and_opens_nothing() -> None:
    compose = miniyaml.loads((DOCKER / "compose.yaml").read_text())
    backend = compose["services"]["backend"]
    # On Linux host.docker.internal exists only through this mapping.
    assert "host.docker.internal:host-gateway" in backend["extra_hosts"]
    assert backend["env_file"] == ["./backend.env"]
    # No published ports, not on the host's network: nothing of NATS is opened
    # to anything but the backend.
    assert "ports" not in backend
    assert "network_mode" not in backend
    environment = backend["environment"]
    assert environment["USE_TRAINING_HOST_SERVICE"] == "true"
    assert not {key for key in environment if "PASSWORD" in key or key.startswith("NATS_")}
    assert (DOCKER / "backend.env").name in (DOCKER / ".gitignore").read_text().split()


def test_env_example_uses_the_backend_user_and_no_password() -> None:
    values = read_env_file(DOCKER / "backend.env.example")
    assert set(values) == ENV_KEYS
    assert values["NATS_URL"] == "nats://host.docker.internal:4222"
    # Least privilege: the backend may ask for training, never take jobs.
    assert values["NATS_USER"] == "backend"
    assert values["NATS_PASSWORD"] == ""


def test_docker_env_writes_the_real_file_0600(tmp_path: Path) -> None:
    sandbox: Sandbox = make_sandbox(tmp_path)
    passwords = credentials.load_or_create(sandbox.state)
    out = tmp_path / "backend" / "backend.env"
    result = sandbox.run("docker-env", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = read_env_file(out)
    assert set(values) == ENV_KEYS
    assert values["NATS_PASSWORD"] == passwords["backend"]
    assert values["NATS_USER"] == "backend"
    assert values["NATS_URL"] == "nats://host.docker.internal:4222"
    for password in passwords.values():
        assert password not in result.stdout + result.stderr
    # The default place is the state folder, which --purge removes.
    sandbox.run("docker-env", "--nats-port", "4333")
    values = read_env_file(sandbox.state / "backend.env")
    assert values["NATS_URL"] == "nats://host.docker.internal:4333"


def test_docker_env_needs_credentials(tmp_path: Path) -> None:
    layout = installer.Layout.from_environment({"TRAINING_STATE_DIR": str(tmp_path)})
    with pytest.raises(installer.OpsError, match="start the server once"):
        installer.write_docker_env(layout, tmp_path / "backend.env")
