"""A host trainer as a child process: for the demo, the benchmarks and the tests.

Secrets travel in the child's environment, never on its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats.errors
from nats.aio.client import Client

from bus_contracts.codec import encode
from bus_contracts.messages.health import HealthRequest
from bus_contracts.subjects import Subjects


class HostTrainerProcess:
    """``python -m host_trainer serve`` with ``HOST_TRAINER_*`` settings."""

    def __init__(
        self,
        *,
        url: str,
        password: str,
        work_dir: Path,
        host_id: str,
        settings: dict[str, str] | None = None,
        subjects: Subjects | None = None,
    ) -> None:
        self.subjects = subjects or Subjects()
        self.host_id = host_id
        self.log_path = work_dir / f"{host_id}.log"
        env = {
            **os.environ,
            "NATS_URL": url,
            "NATS_USER": "host_trainer",
            "NATS_PASSWORD": password,
            "TRAINING_STATE_DIR": str(work_dir / "state"),
            "HOST_TRAINER_HOST_ID": host_id,
            "HOST_TRAINER_SUBJECT_ROOT": self.subjects.root,
        }
        env.update(
            {f"HOST_TRAINER_{key.upper()}": value for key, value in (settings or {}).items()}
        )
        self.models_dir = Path(env.get("HOST_TRAINER_MODELS_DIR", work_dir / "models"))
        env["HOST_TRAINER_MODELS_DIR"] = str(self.models_dir)
        self.config_path = work_dir / f"{host_id}.toml"
        if not self.config_path.exists():
            self.config_path.write_text("")
        work_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "host_trainer", "serve", "--config", str(self.config_path)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, nc: Client, timeout_s: float = 60.0) -> None:
        """Until the host answers ``training.health`` (its endpoints are subscribed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"host trainer exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                await nc.request(self.subjects.health, encode(HealthRequest()), timeout=0.5)
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.05)
        raise TimeoutError(f"host trainer not ready in {timeout_s} s; see {self.log_path}")

    def send(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the host and its workers, as a crash of the machine's service would."""
        self.send(signal.SIGCONT)
        self.send(signal.SIGKILL)
        self.process.wait()
        self._end_group()

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it overstays; returns the exit code."""
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
        self._end_group()
        self._log.close()
        return code

    def _end_group(self) -> None:
        """Workers share the host's process group: none outlives it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
