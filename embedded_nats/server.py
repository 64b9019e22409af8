"""Start and stop the project's nats-server: one way, used by the demo, the tests,
the service units and local runs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from embedded_nats.credentials import ROLES, Role, env_var
from embedded_nats.paths import CONFIG_FILE, nats_server_binary

_SUBJECT_ROOT = re.compile(r'"training\.')


@dataclass(frozen=True, slots=True)
class ServerInfo:
    url: str
    monitoring_url: str
    websocket_url: str
    pid: int

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self)))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> ServerInfo:
        return cls(**json.loads(path.read_text()))


def render_config(subject_root_pattern: str, source: Path = CONFIG_FILE) -> str:
    """The project's config with its ``training.`` subjects moved under another root.

    Tests give every case a root of its own (``t7.training``) on one shared server;
    rendering with ``*.training`` keeps exactly the production permissions, one
    token deeper.
    """
    return _SUBJECT_ROOT.sub(f'"{subject_root_pattern}.', source.read_text())


class NatsServer:
    """A nats-server child process with the project's config.

    Ports of ``-1`` are chosen by the server; after the first start they are pinned,
    so that :meth:`restart` brings the server back where clients expect it.
    """

    def __init__(
        self,
        *,
        store_dir: Path,
        passwords: dict[Role, str],
        config: Path = CONFIG_FILE,
        host: str = "127.0.0.1",
        monitor_host: str = "127.0.0.1",
        websocket_host: str = "127.0.0.1",
        port: int = -1,
        monitor_port: int = -1,
        websocket_port: int = -1,
        log_file: Path | None = None,
    ) -> None:
        self.config = config
        self.store_dir = store_dir
        self.host = host
        # Monitoring (/varz, /connz) has no authentication: it stays on loopback even
        # when clients are let in from containers.
        self.monitor_host = monitor_host
        self.websocket_host = websocket_host
        self.port = port
        self.monitor_port = monitor_port
        self.websocket_port = websocket_port
        # Always a log: a server that fails to start must be able to say why.
        self.log_file = log_file or store_dir / "nats-server.log"
        self._passwords = passwords
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.info: ServerInfo | None = None

    def environment(self) -> dict[str, str]:
        """The variables nats-server.conf refers to."""
        env = dict(os.environ)
        env.update(
            NATS_HOST=self.host,
            NATS_PORT=str(self.port),
            NATS_MONITOR_HOST_PORT=f"{self.monitor_host}:{self.monitor_port}",
            NATS_WS_HOST=self.websocket_host,
            NATS_WS_PORT=str(self.websocket_port),
            NATS_STORE_DIR=str(self.store_dir),
        )
        env.update({env_var(role): self._passwords[role] for role in ROLES})
        return env

    def check_config(self) -> subprocess.CompletedProcess[str]:
        """``nats-server -t``: syntax and fields of the config, without starting."""
        return subprocess.run(
            [str(nats_server_binary()), "-t", "-c", str(self.config)],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )

    @property
    def pid(self) -> int:
        assert self._process is not None, "server not started"
        return self._process.pid

    @property
    def url(self) -> str:
        assert self.info is not None, "server not started"
        return self.info.url

    def start(self, timeout_s: float = 10.0) -> ServerInfo:
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        if self._log is not None:
            self._log.close()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            [str(nats_server_binary()), "-c", str(self.config), "--ports_file_dir", str(ports_dir)],
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ports_file = ports_dir / f"nats-server_{self._process.pid}.ports"
        try:
            self.info = self._wait_ready(ports_file, timeout_s)
        except BaseException:
            self.stop()
            raise
        self._pin_ports(self.info)
        return self.info

    def _wait_ready(self, ports_file: Path, timeout_s: float) -> ServerInfo:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with code {self._process.returncode} at start-up"
                    + self._log_tail()
                )
            if ports_file.exists():
                ports = json.loads(ports_file.read_text() or "{}")
                if ports.get("nats"):
                    url = ports["nats"][0]
                    if _accepts_connections(url):
                        return ServerInfo(
                            url=url,
                            monitoring_url=(ports.get("monitoring") or [""])[0],
                            websocket_url=(ports.get("websocket") or [""])[0],
                            pid=self._process.pid,
                        )
            time.sleep(0.005)
        raise TimeoutError(f"nats-server not ready within {timeout_s} s")

    def _log_tail(self, lines: int = 5) -> str:
        if not self.log_file.exists():
            return ""
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return f"; {self.log_file} ends with:\n" + "\n".join(tail)

    def _pin_ports(self, info: ServerInfo) -> None:
        self.port = _port_of(info.url)
        if info.monitoring_url:
            self.monitor_port = _port_of(info.monitoring_url)
        if info.websocket_url:
            self.websocket_port = _port_of(info.websocket_url)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate, wait, then kill: never leaves a process behind."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def detach(self) -> None:
        """Leave the server running on its own (``embedded-nats start``): this object
        lets go of it, and ``embedded-nats stop`` ends it by its pid."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._process is not None:
            # No longer ours to wait for: tell Popen so, or it warns when collected.
            self._process.returncode = 0
            self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: for fault tests."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self.stop()

    def restart(self, timeout_s: float = 10.0) -> ServerInfo:
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _accepts_connections(url: str) -> bool:
    host = url.split("://", 1)[1].rsplit(":", 1)[0]
    try:
        with socket.create_connection((host, _port_of(url)), timeout=0.2):
            return True
    except OSError:
        return False
