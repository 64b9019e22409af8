"""The parent's side of a job's worker process.

Each job runs in a process of its own, so that a crash, a segfault or an
out-of-memory kill fails that job alone, and ending the process frees its
memory (GPU included) for certain. The worker is a fresh interpreter
(``python -m job_runtime.worker_main``) talking over an inherited socket:
unlike multiprocessing's spawn it never re-imports the caller's ``__main__``,
so a backend script without a main guard still gets its fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec

from bus_contracts.codec import encode
from bus_contracts.messages.start import StartTraining
from job_runtime.worker_process import WorkerAssignment
from job_runtime.worker_protocol import (
    STOP,
    WorkerDone,
    WorkerFailed,
    WorkerMessage,
    decode_message,
)

log = logging.getLogger(__name__)

_TERMINATE_WAIT_S = 1.0
_REAP_WAIT_S = 5.0


def _worker_environment() -> dict[str, str]:
    env = dict(os.environ)
    # OpenMP threads that spin while waiting stall torch for seconds on a busy
    # machine (measured: a 0.4 s job took 14 s); passive waiting costs nothing here.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


class WorkerHandle:
    def __init__(
        self,
        request: StartTraining,
        *,
        task_id: str,
        data_dir: Path,
        models_dir: Path,
        progress_interval_s: float,
    ) -> None:
        self.task_id = task_id
        self._assignment = WorkerAssignment(
            request_json=encode(request),
            task_id=task_id,
            data_dir=str(data_dir),
            models_dir=str(models_dir),
            progress_interval_s=progress_interval_s,
        )
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stop_asked = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        parent_end, child_end = socket.socketpair()
        with child_end:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "job_runtime.worker_main", str(child_end.fileno())],
                pass_fds=[child_end.fileno()],
                stdin=subprocess.DEVNULL,
                env=_worker_environment(),
            )
        self._conn = Connection(parent_end.detach())
        self._conn.send_bytes(msgspec.json.encode(self._assignment))
        log.info("worker.started task_id=%s pid=%s", self.task_id, self._process.pid)

    async def messages(self) -> AsyncIterator[WorkerMessage]:
        """Every message of the worker, ending with its last; a worker that dies
        without a last word yields a failure naming its exit code or signal."""
        assert self._conn is not None, "worker not started"
        conn = self._conn
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(conn.fileno(), readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                while conn.poll():
                    try:
                        data = conn.recv_bytes()
                    except (EOFError, OSError):
                        yield await self._death_notice()
                        return
                    message = decode_message(data)
                    if isinstance(message, WorkerDone | WorkerFailed):
                        # The process is gone (its memory freed) before anyone hears the end.
                        await self._reap()
                        yield message
                        return
                    yield message
        finally:
            loop.remove_reader(conn.fileno())
            conn.close()

    async def _death_notice(self) -> WorkerFailed:
        await self._reap()
        assert self._process is not None
        code = self._process.returncode
        if code is not None and code < 0:
            reason = f"worker process killed by signal {signal.Signals(-code).name}"
        else:
            reason = f"worker process exited with code {code} before finishing"
        # An end we asked for is news; one we did not is an error.
        level = logging.INFO if self._stop_asked else logging.ERROR
        log.log(level, "worker.died task_id=%s pid=%s reason=%s", self.task_id, self.pid, reason)
        return WorkerFailed(code=500, message=reason)

    async def _wait(self, timeout_s: float | None) -> bool:
        """True once the process has ended, False if it still runs after ``timeout_s``."""
        assert self._process is not None
        try:
            await asyncio.to_thread(self._process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    async def _reap(self) -> None:
        if not await self._wait(_REAP_WAIT_S):
            await self._force_end()

    def request_stop(self) -> None:
        """Ask the worker to stop at its next batch."""
        if self._conn is not None and not self._conn.closed:
            with contextlib.suppress(OSError):  # the worker already ended
                self._conn.send_bytes(STOP)

    async def stop(self, grace_s: float) -> None:
        """Ask nicely, then terminate, then kill: the process surely ends."""
        if self._process is None:
            return
        self._stop_asked = True
        self.request_stop()
        if not await self._wait(grace_s):
            await self._force_end()

    async def _force_end(self) -> None:
        process = self._process
        assert process is not None
        log.info("worker.terminate task_id=%s pid=%s", self.task_id, process.pid)
        process.terminate()
        if not await self._wait(_TERMINATE_WAIT_S):
            log.warning("worker.kill task_id=%s pid=%s", self.task_id, process.pid)
            process.kill()
            await self._wait(None)
