"""``embedded-nats``: run the project's nats-server and tell clients where it is.

embedded-nats run         foreground, for systemd/launchd (exec's nats-server)
embedded-nats start       in the background; `stop` ends it
embedded-nats status      URL and whether it answers; exit 0 when up
embedded-nats check       validate nats-server.conf with `nats-server -t`
embedded-nats env --role observer
                          export lines for the `nats` CLI (eval "$(...)")
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path

import psutil

from embedded_nats import credentials
from embedded_nats.client import SERVER_INFO_FILE_NAME, BusEndpoint
from embedded_nats.paths import nats_server_binary, state_dir
from embedded_nats.server import NatsServer, ServerInfo, _accepts_connections

DEFAULT_PORTS = {"NATS_PORT": 4222, "NATS_MONITOR_PORT": 8222, "NATS_WS_PORT": 9222}
STOP_TIMEOUT_S = 10.0


def _server(base: Path) -> NatsServer:
    def port(name: str) -> int:
        return int(os.environ.get(name, DEFAULT_PORTS[name]))

    return NatsServer(
        store_dir=base / "jetstream",
        passwords=credentials.load_or_create(base),
        host=os.environ.get("NATS_HOST", "127.0.0.1"),
        monitor_host=os.environ.get("NATS_MONITOR_HOST", "127.0.0.1"),
        websocket_host=os.environ.get("NATS_WS_HOST", "127.0.0.1"),
        port=port("NATS_PORT"),
        monitor_port=port("NATS_MONITOR_PORT"),
        websocket_port=port("NATS_WS_PORT"),
        log_file=base / "nats-server.log",
    )


def _run(base: Path) -> int:
    server = _server(base)
    info = ServerInfo(
        url=f"nats://{server.host}:{server.port}",
        monitoring_url=f"http://{server.monitor_host}:{server.monitor_port}",
        websocket_url=f"ws://{server.websocket_host}:{server.websocket_port}",
        pid=os.getpid(),
    )
    info.write(base / SERVER_INFO_FILE_NAME)
    binary = str(nats_server_binary())
    # exec: the service manager supervises nats-server itself, signals included.
    os.execve(binary, [binary, "-c", str(server.config)], server.environment())


def _start(base: Path) -> int:
    info_file = base / SERVER_INFO_FILE_NAME
    if info_file.exists() and _accepts_connections(ServerInfo.read(info_file).url):
        print(f"already running at {ServerInfo.read(info_file).url}")
        return 0
    server = _server(base)
    info = server.start()
    server.detach()
    info.write(info_file)
    print(f"nats-server running at {info.url} (pid {info.pid}, log {server.log_file})")
    return 0


def _stop(base: Path) -> int:
    info_file = base / SERVER_INFO_FILE_NAME
    if not info_file.exists():
        print("not running")
        return 0
    info = ServerInfo.read(info_file)
    info_file.unlink()
    try:
        process = psutil.Process(info.pid)
        if "nats-server" not in process.name():
            # The pid was reused by another program since: not ours to signal.
            print("not running")
            return 0
        process.send_signal(signal.SIGTERM)
        process.wait(STOP_TIMEOUT_S)
    except psutil.NoSuchProcess:
        print("not running")
        return 0
    except psutil.TimeoutExpired:
        process.kill()
    print(f"stopped nats-server (pid {info.pid})")
    return 0


def _status(base: Path) -> int:
    endpoint = BusEndpoint.from_environment("observer", base)
    up = _accepts_connections(endpoint.url)
    print(f"{endpoint.url} {'up' if up else 'down'}")
    return 0 if up else 1


def _check(base: Path) -> int:
    result = _server(base).check_config()
    sys.stdout.write(result.stdout + result.stderr)
    return result.returncode


def _env(base: Path, role: credentials.Role) -> int:
    endpoint = BusEndpoint.from_environment(role, base)
    for name, value in (
        ("NATS_URL", endpoint.url),
        ("NATS_USER", endpoint.user or ""),
        ("NATS_PASSWORD", endpoint.password or ""),
    ):
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embedded-nats", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "start", "stop", "status", "check"):
        commands.add_parser(name)
    env = commands.add_parser("env")
    env.add_argument("--role", choices=credentials.ROLES, default="observer")
    args = parser.parse_args(argv)
    base = state_dir()
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return _dispatch(args, base)
    except (OSError, RuntimeError, ValueError) as exc:
        # One line a person (or a service manager's log) can act on.
        print(f"embedded-nats {args.command}: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, base: Path) -> int:
    match args.command:
        case "run":
            return _run(base)
        case "start":
            return _start(base)
        case "stop":
            return _stop(base)
        case "status":
            return _status(base)
        case "check":
            return _check(base)
        case _:
            return _env(base, args.role)


if __name__ == "__main__":
    sys.exit(main())
