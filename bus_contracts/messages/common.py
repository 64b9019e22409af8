"""Small types shared by several message families."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from bus_contracts import bounds

JobState = Literal["queued", "running", "completed", "failed", "cancelled", "lost"]
Phase = Literal[
    "loading_data", "computing_features", "labeling", "training", "evaluating", "saving"
]
Executor = Literal["host", "local"]
Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"]

TaskId = Annotated[str, msgspec.Meta(pattern=bounds.TASK_ID_PATTERN)]
Symbol = Annotated[str, msgspec.Meta(pattern=bounds.SYMBOL_PATTERN)]

FINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "lost"})


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Why a job failed, or why a request was refused."""

    code: int
    message: str
    field: str | None = None
    error_id: str | None = None


class ResultSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The headline of a completed job, carried by status and the completed event."""

    test_accuracy: float
    test_macro_f1: float
    baseline_accuracy: float
    epochs_run: int
    early_stopped: bool
    duration_s: float
    model_version: str
    model_path: str
    artifact_name: str | None = None
