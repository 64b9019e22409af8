"""Real host trainer processes for tests: `host-trainer serve` as a subprocess,
on the test's own subject root, with faults injected by signals."""

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

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class HostProcess:
    def __init__(
        self,
        *,
        url: str,
        password: str,
        subjects: Subjects,
        work_dir: Path,
        host_id: str,
        settings: dict[str, str],
    ) -> None:
        self.subjects = subjects
        self.host_id = host_id
        self.models_dir = work_dir / "models"
        self.log_path = work_dir / f"{host_id}.log"
        env = {
            **os.environ,
            "NATS_URL": url,
            "NATS_USER": "host_trainer",
            "NATS_PASSWORD": password,
            "TRAINING_STATE_DIR": str(work_dir / "state"),
            "HOST_TRAINER_HOST_ID": host_id,
            "HOST_TRAINER_SUBJECT_ROOT": subjects.root,
            "HOST_TRAINER_DATA_DIR": str(PROJECT_ROOT / "data"),
            "HOST_TRAINER_MODELS_DIR": str(self.models_dir),
            "HOST_TRAINER_METRICS_PORT": "-1",
            "HOST_TRAINER_HEARTBEAT_INTERVAL_S": "0.5",
            "HOST_TRAINER_LOST_AFTER_S": "3",
            **settings,
        }
        self.config_path = work_dir / f"{host_id}.toml"
        if not self.config_path.exists():
            self.config_path.write_text("")
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

    async def wait_ready(self, nc: Client, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"host trainer exited {self.process.returncode}:\n{self.log_text()}"
                )
            try:
                await nc.request(self.subjects.health, encode(HealthRequest()), timeout=0.5)
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.05)
        raise TimeoutError(f"host trainer not ready in {timeout_s} s:\n{self.log_text()}")

    def send(self, sig: signal.Signals) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def kill(self) -> None:
        self.send(signal.SIGCONT)
        self.send(signal.SIGKILL)
        self.process.wait()
        self._end_workers()

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it overstays; returns the exit code."""
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
        self._end_workers()
        self._log.close()
        return code

    def _end_workers(self) -> None:
        """Workers live in the host's process group: none may outlive a test."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
