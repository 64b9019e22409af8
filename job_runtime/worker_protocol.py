"""Messages from a worker process to its parent, over a pipe (msgspec JSON)."""

from __future__ import annotations

import msgspec

from bus_contracts.messages.common import Phase, ResultSummary
from bus_contracts.messages.performance import (
    ArtifactRef,
    EpochMetrics,
    ModelInfo,
    ResourceUsage,
    TestMetrics,
    TrainingMetrics,
)

STOP = b"stop"
"""What the parent sends to ask the worker to stop at the next batch."""


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    pass


class WorkerStarted(_Msg, frozen=True, kw_only=True, tag="started"):
    pid: int
    device: str


class WorkerPhase(_Msg, frozen=True, kw_only=True, tag="phase"):
    phase: Phase
    percent: float
    message: str = ""


class WorkerBatch(_Msg, frozen=True, kw_only=True, tag="batch"):
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    samples_per_s: float
    percent: float


class WorkerEpoch(_Msg, frozen=True, kw_only=True, tag="epoch"):
    metrics: EpochMetrics
    epochs: int
    best: bool
    percent: float


class WorkerBatchSizeReduced(_Msg, frozen=True, kw_only=True, tag="batch_size_reduced"):
    old: int
    new: int
    reason: str
    percent: float


class WorkerDone(_Msg, frozen=True, kw_only=True, tag="done"):
    summary: ResultSummary
    training: TrainingMetrics
    test: TestMetrics
    model: ModelInfo
    resources: ResourceUsage
    artifact: ArtifactRef
    history: list[EpochMetrics]
    model_dir: str
    package_path: str
    """The model directory packed as a tarball, for the parent to upload and delete."""


class WorkerFailed(_Msg, frozen=True, kw_only=True, tag="failed"):
    code: int
    message: str
    field: str | None = None
    cancelled: bool = False
    traceback: str | None = None
    """For the parent's log only; never sent to a client."""


WorkerMessage = (
    WorkerStarted
    | WorkerPhase
    | WorkerBatch
    | WorkerEpoch
    | WorkerBatchSizeReduced
    | WorkerDone
    | WorkerFailed
)

encode_message = msgspec.json.Encoder().encode
decode_message = msgspec.json.Decoder(WorkerMessage).decode
