"""ops/install and ops/uninstall in a sandbox HOME, with the service manager faked.

Each test lists the files install creates and checks that uninstall removes
exactly those: a file that was there before, in the same folder, stays.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import Sandbox, installer, make_sandbox

UNITS = ["training-nats.service", "training-host.service"]
LABELS = ["local.gpu-training-host.nats-server", "local.gpu-training-host.host-trainer"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


def manifest_entries(sandbox: Sandbox) -> list[str]:
    text = (sandbox.state / "ops-manifest.txt").read_text()
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_systemd_install_creates_exactly_these_files(sandbox: Sandbox) -> None:
    home_before = sandbox.tree(sandbox.home)
    assert home_before == set()
    result = sandbox.run("install", "--manager", "systemd")

    assert sandbox.tree(sandbox.home) == {
        ".config/",
        ".config/systemd/",
        ".config/systemd/user/",
        ".config/systemd/user/training-nats.service",
        ".config/systemd/user/training-host.service",
    }
    assert sandbox.tree(sandbox.state) == {"logs/", "ops-manifest.txt"}
    assert oct((sandbox.state).stat().st_mode & 0o777) == "0o700"
    unit_dir = sandbox.home / ".config/systemd/user"
    assert manifest_entries(sandbox) == [
        "manager systemd",
        *(f"unit {u}" for u in UNITS),
        f"dir {sandbox.state}",
        f"dir {sandbox.state / 'logs'}",
        f"dir {sandbox.home / '.config'}",
        f"dir {sandbox.home / '.config/systemd'}",
        f"dir {unit_dir}",
        *(f"file {unit_dir / u}" for u in UNITS),
    ]
    assert sandbox.calls() == [
        "systemctl --user daemon-reload",
        "systemctl --user enable " + " ".join(UNITS),
        "systemctl --user restart " + " ".join(UNITS),
    ]
    assert "wrote" in result.stdout

    sandbox.clear_calls()
    sandbox.run("uninstall")
    assert sandbox.tree(sandbox.home) == home_before
    assert not sandbox.state.exists()
    assert sandbox.calls() == [
        "systemctl --user disable --now " + " ".join(reversed(UNITS)),
        "systemctl --user daemon-reload",
        "systemctl --user reset-failed " + " ".join(UNITS),
    ]


def test_install_twice_is_the_same_and_uninstall_keeps_what_was_there(sandbox: Sandbox) -> None:
    unit_dir = sandbox.home / ".config/systemd/user"
    unit_dir.mkdir(parents=True)
    (unit_dir / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    sandbox.state.mkdir()
    (sandbox.state / "credentials.json").write_text("{}")
    home_before = sandbox.tree(sandbox.home)

    sandbox.run("install", "--manager", "systemd", "--no-start")
    first_home, first_manifest = sandbox.tree(sandbox.home), manifest_entries(sandbox)
    sandbox.run("install", "--manager", "systemd", "--no-start")
    assert sandbox.tree(sandbox.home) == first_home
    assert manifest_entries(sandbox) == first_manifest
    assert first_home - home_before == {f".config/systemd/user/{u}" for u in UNITS}
    # Only what install created is in the manifest: not the folders that were there.
    assert [e for e in first_manifest if e.startswith("dir ")] == [f"dir {sandbox.state / 'logs'}"]
    assert not any("restart" in call for call in sandbox.calls())

    sandbox.run("uninstall")
    sandbox.run("uninstall")  # twice is fine
    assert sandbox.tree(sandbox.home) == home_before
    assert (unit_dir / "other.service").exists()
    # Without --purge the credentials (and the JetStream store, models) stay.
    assert sandbox.tree(sandbox.state) == {"credentials.json"}


def test_launchd_install_and_uninstall(sandbox: Sandbox) -> None:
    agents = sandbox.home / "Library" / "LaunchAgents"
    agents.mkdir(parents=True)
    (agents / "com.example.unrelated.plist").write_text("<plist/>")
    home_before = sandbox.tree(sandbox.home)

    sandbox.run("install", "--manager", "launchd")
    assert sandbox.tree(sandbox.home) - home_before == {
        f"Library/LaunchAgents/{label}.plist" for label in LABELS
    }
    domain = f"gui/{os.getuid()}"
    assert sandbox.calls() == [
        f"launchctl bootout {domain}/{LABELS[0]}",
        f"launchctl bootstrap {domain} {agents / LABELS[0]}.plist",
        f"launchctl bootout {domain}/{LABELS[1]}",
        f"launchctl bootstrap {domain} {agents / LABELS[1]}.plist",
    ]
    sandbox.run("install", "--manager", "launchd")
    assert sandbox.tree(sandbox.home) - home_before == {
        f"Library/LaunchAgents/{label}.plist" for label in LABELS
    }

    sandbox.clear_calls()
    sandbox.run("uninstall")
    assert sandbox.calls() == [f"launchctl bootout {domain}/{label}" for label in reversed(LABELS)]
    assert sandbox.tree(sandbox.home) == home_before


def test_install_leaves_a_foreign_file_of_the_same_name_alone(sandbox: Sandbox) -> None:
    unit_dir = sandbox.home / ".config/systemd/user"
    unit_dir.mkdir(parents=True)
    foreign = unit_dir / "training-host.service"
    foreign.write_text("[Service]\nExecStart=/usr/bin/someone-elses\n")
    result = sandbox.run("install", "--manager", "systemd", check=False)
    assert result.returncode == 1
    assert "was not written by ops/install" in result.stderr
    assert foreign.read_text() == "[Service]\nExecStart=/usr/bin/someone-elses\n"
    assert sandbox.calls() == []
    sandbox.run("uninstall")
    assert foreign.exists()


def test_uninstall_without_manifest_finds_its_files_by_their_marker(sandbox: Sandbox) -> None:
    sandbox.run("install", "--manager", "systemd")
    (sandbox.state / "ops-manifest.txt").unlink()  # state folder lost or wiped
    sandbox.clear_calls()
    sandbox.run("uninstall")
    unit_dir = sandbox.home / ".config/systemd/user"
    assert not any(unit_dir.iterdir())
    assert sandbox.calls()[0] == "systemctl --user disable --now " + " ".join(reversed(UNITS))


def test_install_fails_when_the_service_manager_does(sandbox: Sandbox) -> None:
    failing = sandbox.root / "fakes" / "failing-systemctl"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    sandbox.env["SYSTEMCTL"] = str(failing)
    result = sandbox.run("install", "--manager", "systemd", check=False)
    assert result.returncode == 1
    assert "service manager failed (exit 3)" in result.stderr


def test_install_refuses_a_secret_in_env(sandbox: Sandbox) -> None:
    result = sandbox.run("install", "--manager", "systemd", "--env", "NATS_PASSWORD=x", check=False)
    assert result.returncode == 2
    assert "looks like a secret" in result.stderr
    assert sandbox.tree(sandbox.home) == set()


def test_purge_refuses_a_folder_that_is_not_a_state_folder(tmp_path: Path) -> None:
    layout = installer.Layout(
        checkout=tmp_path / "checkout",
        venv=tmp_path / "checkout" / ".venv",
        state_dir=tmp_path / "home",
        home=tmp_path / "home",
        xdg_config_home=tmp_path / "home" / ".config",
    )
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "precious").write_text("keep me")
    with pytest.raises(installer.OpsError, match="refusing to purge"):
        installer.uninstall(layout, purge=True, runner=lambda argv: 0)
    assert (tmp_path / "home" / "precious").exists()
