"""The code that runs inside a job's worker process.

It is the only place where torch runs: the engine trains here and reports over
the pipe. Batch reports are throttled here, so a fast loop never floods the
pipe; stop requests are read from the pipe at every batch.
"""

from __future__ import annotations

import os
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NoReturn

import msgspec

from bus_contracts.codec import decode_request
from bus_contracts.messages.common import Phase
from bus_contracts.messages.performance import EpochMetrics
from bus_contracts.messages.start import StartTraining
from job_runtime.worker_protocol import (
    STOP,
    WorkerBatch,
    WorkerBatchSizeReduced,
    WorkerDone,
    WorkerEpoch,
    WorkerFailed,
    WorkerMessage,
    WorkerPhase,
    WorkerStarted,
    encode_message,
)
from training_engine.errors import EngineError, TrainingCancelled

PARENT_GONE_EXIT_CODE = 3


class PipeSink:
    """The engine's ProgressSink, reporting to the parent process."""

    def __init__(self, conn: Connection, progress_interval_s: float) -> None:
        self._conn = conn
        self._interval_s = progress_interval_s
        self._last_batch_sent = 0.0
        self._stop = False

    def send(self, message: WorkerMessage) -> None:
        try:
            self._conn.send_bytes(encode_message(message))
        except OSError:
            _parent_gone()

    def phase(self, phase: Phase, percent: float, message: str = "") -> None:
        self.send(WorkerPhase(phase=phase, percent=percent, message=message))

    def batch(
        self,
        *,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        loss: float,
        samples_per_s: float,
        percent: float,
    ) -> None:
        now = time.monotonic()
        if now - self._last_batch_sent < self._interval_s:
            return
        self._last_batch_sent = now
        self.send(
            WorkerBatch(
                epoch=epoch,
                epochs=epochs,
                batch=batch,
                batches=batches,
                loss=loss,
                samples_per_s=samples_per_s,
                percent=percent,
            )
        )

    def epoch(self, *, metrics: EpochMetrics, epochs: int, best: bool, percent: float) -> None:
        self.send(WorkerEpoch(metrics=metrics, epochs=epochs, best=best, percent=percent))

    def batch_size_reduced(self, *, old: int, new: int, reason: str, percent: float) -> None:
        self.send(WorkerBatchSizeReduced(old=old, new=new, reason=reason, percent=percent))

    def should_stop(self) -> bool:
        if not self._stop and self._conn.poll():
            try:
                self._stop = self._conn.recv_bytes() == STOP
            except (EOFError, OSError):
                _parent_gone()
        return self._stop


def _parent_gone() -> NoReturn:
    """The host or backend that started this worker died: nobody awaits the result,
    and the memory (GPU included) is freed by ending now, quietly."""
    os._exit(PARENT_GONE_EXIT_CODE)


class WorkerAssignment(msgspec.Struct, frozen=True, kw_only=True):
    """The parent's first message: what to train."""

    request_json: bytes
    task_id: str
    data_dir: str
    models_dir: str
    progress_interval_s: float


def run_assignment(conn: Connection) -> None:
    """Run the job the parent assigns over ``conn``, reporting back over it."""
    assignment = msgspec.json.decode(conn.recv_bytes(), type=WorkerAssignment)
    task_id, models_dir = assignment.task_id, assignment.models_dir
    sink = PipeSink(conn, assignment.progress_interval_s)
    try:
        request = decode_request(assignment.request_json, StartTraining)
        # torch is imported here, in the worker, never in the service's event loop.
        from training_engine.artifact import pack_artifact  # noqa: PLC0415
        from training_engine.devices import resolve_device  # noqa: PLC0415
        from training_engine.run import run_training  # noqa: PLC0415

        device = resolve_device(request.device)
        sink.send(WorkerStarted(pid=os.getpid(), device=str(device)))
        outcome = run_training(
            request,
            task_id=task_id,
            data_dir=Path(assignment.data_dir),
            models_dir=Path(models_dir),
            sink=sink,
            device=str(device),
        )
        package = Path(models_dir) / ".outgoing" / f"{task_id}.tar.gz"
        package.parent.mkdir(parents=True, exist_ok=True)
        package.write_bytes(pack_artifact(outcome.model_dir))
        sink.send(
            WorkerDone(
                summary=outcome.summary(),
                training=outcome.training,
                test=outcome.test,
                model=outcome.model,
                resources=outcome.resources,
                artifact=outcome.artifact,
                history=outcome.history,
                model_dir=str(outcome.model_dir),
                package_path=str(package),
            )
        )
    except TrainingCancelled as exc:
        sink.send(WorkerFailed(code=exc.code, message=str(exc), cancelled=True))
    except EngineError as exc:
        sink.send(WorkerFailed(code=exc.code, message=str(exc), field=exc.field))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs it
        sink.send(
            WorkerFailed(
                code=500,
                message=f"{type(exc).__name__} in the training worker",
                traceback=traceback.format_exc(),
            )
        )
    finally:
        conn.close()
