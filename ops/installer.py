"""ops/install and ops/uninstall: put the services in place, and take them away again.

install   renders the units (or plists) into the user's service folder, records
          every file and folder it created in the state folder's manifest,
          then asks the service manager to load, enable and (re)start them.
uninstall stops and unloads what the manifest names, removes exactly the files
          and (now empty) folders it lists, and the state folder's runtime
          files; --purge removes the whole state folder: credentials, the
          JetStream store (job history, model artifacts), models and logs.

The service manager is run as $SYSTEMCTL / $LAUNCHCTL (default ``systemctl`` and
``launchctl``), so a test can put a fake in their place. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import render
from render import SERVICES, Layout, Manager, Options

# Written by the processes that run, gone with them: removed by every uninstall.
RUNTIME_FILES = ("host-trainer.pid", "nats-server.json", "nats-server.tmp")
DOCKER_ENV_FILE = "backend.env"

Runner = Callable[[Sequence[str]], int]
T = TypeVar("T")


class OpsError(Exception):
    """Something install or uninstall will not do; the message says why."""


def run_command(argv: Sequence[str]) -> int:
    print("+ " + shlex.join(argv))
    return subprocess.run(list(argv), check=False).returncode


def manager_command(manager: Manager, environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    if manager == "systemd":
        return [*shlex.split(env.get("SYSTEMCTL") or "systemctl"), "--user"]
    return shlex.split(env.get("LAUNCHCTL") or "launchctl")


@dataclass
class Manifest:
    """What install created: one ``kind value`` entry a line, in creation order."""

    manager: Manager | None = None
    dirs: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    services: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        manifest = cls()
        if not path.exists():
            return manifest
        for line in path.read_text().splitlines():
            kind, _, value = line.partition(" ")
            match kind:
                case "manager":
                    manifest.manager = "launchd" if value == "launchd" else "systemd"
                case "dir":
                    manifest.add(manifest.dirs, Path(value))
                case "file":
                    manifest.add(manifest.files, Path(value))
                case "unit" | "label":
                    manifest.add(manifest.services, value)
        return manifest

    @staticmethod
    def add(entries: list[T], value: T) -> None:
        if value not in entries:
            entries.append(value)

    def write(self, path: Path) -> None:
        kind = "unit" if self.manager == "systemd" else "label"
        lines = [
            "# Written by ops/install: everything it created, which ops/uninstall removes.",
            f"manager {self.manager}",
            *(f"{kind} {name}" for name in self.services),
            *(f"dir {d}" for d in self.dirs),
            *(f"file {f}" for f in self.files),
        ]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)


def _make_dirs(path: Path, manifest: Manifest, mode: int = 0o755) -> None:
    """Create ``path`` and missing parents, recording each one this call created."""
    missing = []
    for candidate in [path, *path.parents]:
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        directory.mkdir(mode=mode)
        manifest.add(manifest.dirs, directory)


def _is_ours(path: Path, layout: Layout) -> bool:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return f"{render.MARKER} {layout.checkout};" in text


def install(
    layout: Layout,
    options: Options,
    *,
    start: bool = True,
    force: bool = False,
    runner: Runner = run_command,
    environ: dict[str, str] | None = None,
) -> list[Path]:
    """Write the service files and start them. Returns the files written."""
    manifest = Manifest.read(layout.manifest)
    if manifest.manager not in (None, options.manager):
        raise OpsError(
            f"already installed for {manifest.manager}: run ops/uninstall first "
            f"(manifest {layout.manifest})"
        )
    files = render.render_all(layout, options)
    for path in files:
        if (
            path.exists()
            and path not in manifest.files
            and not _is_ours(path, layout)
            and not force
        ):
            raise OpsError(f"{path} exists and was not written by ops/install: not touching it")

    manifest.manager = options.manager
    _make_dirs(layout.state_dir, manifest, mode=0o700)
    _make_dirs(layout.log_dir, manifest, mode=0o700)
    for path, text in files.items():
        _make_dirs(path.parent, manifest)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)
        manifest.add(manifest.files, path)
        print(f"wrote {path}")
    for service in SERVICES:
        name = service.unit if options.manager == "systemd" else service.label
        manifest.add(manifest.services, name)
    manifest.write(layout.manifest)
    print(f"manifest {layout.manifest}")

    command = manager_command(options.manager, environ)
    if options.manager == "systemd":
        units = [service.unit for service in SERVICES]
        hint = (
            "is a systemd user session running? (over ssh: loginctl enable-linger, and "
            "XDG_RUNTIME_DIR=/run/user/$UID); the files are in place, ops/uninstall removes them"
        )
        _check(runner([*command, "daemon-reload"]), hint)
        _check(runner([*command, "enable", *units]), hint)
        if start:
            # restart, not start: a second install applies changed units.
            _check(runner([*command, "restart", *units]), hint)
    else:
        domain = f"gui/{os.getuid()}"
        for path, service in zip(files, SERVICES, strict=True):
            runner([*command, "bootout", f"{domain}/{service.label}"])  # may not be loaded
            if start:
                _check(runner([*command, "bootstrap", domain, str(path)]))
    return list(files)


def _check(code: int, hint: str = "") -> None:
    if code != 0:
        raise OpsError(f"the service manager failed (exit {code})" + (f": {hint}" if hint else ""))


def uninstall(
    layout: Layout,
    *,
    purge: bool = False,
    runner: Runner = run_command,
    environ: dict[str, str] | None = None,
) -> list[Path]:
    """Undo install: unload, remove what the manifest lists. Returns what was removed."""
    manifest = Manifest.read(layout.manifest)
    if manifest.manager is None:
        manifest = _manifest_from_markers(layout)
    removed: list[Path] = []
    if manifest.manager is not None:
        command = manager_command(manifest.manager, environ)
        if manifest.manager == "systemd":
            # Failures are fine here: a unit may already be gone.
            runner([*command, "disable", "--now", *reversed(manifest.services)])
        else:
            domain = f"gui/{os.getuid()}"
            for label in reversed(manifest.services):
                runner([*command, "bootout", f"{domain}/{label}"])
        for path in manifest.files:
            if path.exists() or path.is_symlink():
                path.unlink()
                removed.append(path)
        if manifest.manager == "systemd":
            runner([*command, "daemon-reload"])
            runner([*command, "reset-failed", *manifest.services])
    for name in (*RUNTIME_FILES, layout.manifest.name):
        path = layout.state_dir / name
        if path.exists():
            path.unlink()
            removed.append(path)
    if purge:
        removed += _purge(layout)
    for directory in reversed(manifest.dirs):
        # Created by install; removed only once nothing else lives there.
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            removed.append(directory)
    for path in removed:
        print(f"removed {path}")
    return removed


def _manifest_from_markers(layout: Layout) -> Manifest:
    """No manifest (state folder lost): find the files install wrote by their marker."""
    for manager in ("systemd", "launchd"):
        found = [
            path
            for service in SERVICES
            if _is_ours(
                path := layout.unit_dir(manager) / layout.file_name(service, manager), layout
            )
        ]
        if found:
            names = [s.unit if manager == "systemd" else s.label for s in SERVICES]
            return Manifest(manager=manager, files=found, services=names)
    return Manifest()


def _purge(layout: Layout) -> list[Path]:
    state = layout.state_dir
    if not state.exists():
        return []
    guarded = {Path("/"), layout.home.resolve(), Path.home().resolve()}
    if (
        state in guarded
        or state == layout.checkout
        or state in layout.checkout.parents
        or state in layout.home.resolve().parents
    ):
        raise OpsError(f"refusing to purge {state}: it is not a state folder of its own")
    entries = sorted(state.iterdir())
    shutil.rmtree(state)
    return [*entries, state]


def write_docker_env(layout: Layout, out: Path, *, nats_port: int = 4222) -> Path:
    """The env file a containerised backend needs, readable by its owner only."""
    credentials = layout.state_dir / "credentials.json"
    if not credentials.exists():
        raise OpsError(f"no {credentials} yet: start the server once (ops/start-all) to create it")
    password = json.loads(credentials.read_text())["backend"]
    text = (
        "# Written by ops/docker-env: the backend's NATS user, least privilege.\n"
        "# Keep it 0600; never commit it.\n"
        f"NATS_URL=nats://host.docker.internal:{nats_port}\n"
        "NATS_USER=backend\n"
        f"NATS_PASSWORD={password}\n"
        "USE_TRAINING_HOST_SERVICE=true\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = out.with_name(f".{out.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.chmod(0o600)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/install", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inst = commands.add_parser("install", help="write the service files, enable and start them")
    inst.add_argument("--manager", choices=("systemd", "launchd"), default=render.default_manager())
    inst.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a non-secret variable for both services, e.g. NATS_HOST=172.17.0.1",
    )
    inst.add_argument("--config", type=Path, help="host-trainer serve --config FILE")
    inst.add_argument(
        "--logs",
        choices=("journal", "files"),
        default="journal",
        help="systemd: to the journal (default) or to files in the state folder",
    )
    inst.add_argument("--no-start", action="store_true", help="enable, but do not start now")
    inst.add_argument(
        "--force",
        action="store_true",
        help="overwrite a service file of the same name that install did not write",
    )
    uninst = commands.add_parser("uninstall", help="stop, unload and remove what install created")
    uninst.add_argument(
        "--purge",
        action="store_true",
        help="also remove the whole state folder (credentials, JetStream, models)",
    )
    show = commands.add_parser("render", help="print the rendered files, change nothing")
    show.add_argument("--manager", choices=("systemd", "launchd"), default=render.default_manager())
    show.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    show.add_argument("--config", type=Path)
    show.add_argument("--logs", choices=("journal", "files"), default="journal")
    docker = commands.add_parser("docker-env", help="write the backend container's env file")
    docker.add_argument("--out", type=Path, help="default: STATE/backend.env")
    docker.add_argument("--nats-port", type=int, default=int(os.environ.get("NATS_PORT", "4222")))
    args = parser.parse_args(argv)
    layout = Layout.from_environment()
    try:
        match args.command:
            case "install" | "render":
                options = Options(
                    manager=args.manager,
                    env=render.parse_env(args.env),
                    trainer_config=args.config.resolve() if args.config else None,
                    logs=args.logs,
                )
                if args.command == "render":
                    for path, text in render.render_all(layout, options).items():
                        print(f"### {path}\n{text}")
                    return 0
                install(layout, options, start=not args.no_start, force=args.force)
            case "uninstall":
                uninstall(layout, purge=args.purge)
            case _:
                out = write_docker_env(
                    layout, args.out or layout.state_dir / DOCKER_ENV_FILE, nats_port=args.nats_port
                )
                print(f"wrote {out} (mode 0600)")
    except ValueError as exc:
        parser.error(str(exc))
    except OpsError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
