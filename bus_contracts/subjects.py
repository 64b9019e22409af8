"""Subject names, in one place.

Every name hangs off a root (``training`` in production). Tests give each case
its own root, so services and clients of different tests never hear each other
on a shared server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bus_contracts import bounds

SERVICE_NAME = "training-host"
QUEUE_GROUP = "training-hosts"

_TASK_ID = re.compile(bounds.TASK_ID_PATTERN)
_ROOT = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def check_task_id(task_id: str) -> str:
    """Return ``task_id`` if it may stand in a subject, else raise ``ValueError``."""
    if not _TASK_ID.fullmatch(task_id):
        raise ValueError(f"task id {task_id!r} does not match {bounds.TASK_ID_PATTERN}")
    return task_id


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject names and JetStream resource names under one root."""

    root: str = "training"

    def __post_init__(self) -> None:
        if not _ROOT.fullmatch(self.root):
            raise ValueError(f"subject root {self.root!r} is not a dotted NATS token list")

    @property
    def start(self) -> str:
        return f"{self.root}.start"

    @property
    def jobs(self) -> str:
        return f"{self.root}.jobs"

    @property
    def health(self) -> str:
        return f"{self.root}.health"

    @property
    def progress_wildcard(self) -> str:
        return f"{self.root}.progress.>"

    def status(self, task_id: str) -> str:
        return f"{self.root}.status.{check_task_id(task_id)}"

    def stop(self, task_id: str) -> str:
        return f"{self.root}.stop.{check_task_id(task_id)}"

    def performance(self, task_id: str) -> str:
        return f"{self.root}.performance.{check_task_id(task_id)}"

    def progress(self, task_id: str) -> str:
        return f"{self.root}.progress.{check_task_id(task_id)}"

    # JetStream names may not contain dots; derive them from the root.
    @property
    def _stem(self) -> str:
        return self.root.replace(".", "_").upper()

    @property
    def jobs_bucket(self) -> str:
        """KV bucket of job records, one key per task id."""
        return f"{self._stem}_JOBS"

    @property
    def progress_stream(self) -> str:
        """Stream capturing every progress event."""
        return f"{self._stem}_PROGRESS"

    @property
    def models_bucket(self) -> str:
        """Object store bucket of model artifacts."""
        return f"{self._stem}_MODELS"


DEFAULT_SUBJECTS = Subjects()
