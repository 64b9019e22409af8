"""``training.performance.<id>``: the full result of a completed job."""

from __future__ import annotations

import msgspec

from bus_contracts.base import Reply, Request
from bus_contracts.messages.common import Executor


class PerformanceRequest(Request, frozen=True, kw_only=True, tag="training.performance_request"):
    """The (usually empty) body of a performance request."""


class EpochMetrics(msgspec.Struct, frozen=True, kw_only=True):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    duration_s: float
    samples_per_s: float
    batch_size: int


class TrainingMetrics(msgspec.Struct, frozen=True, kw_only=True):
    final_train_loss: float
    final_train_accuracy: float
    final_val_loss: float
    final_val_accuracy: float
    best_val_loss: float
    best_epoch: int
    epochs_run: int
    early_stopped: bool
    duration_s: float
    samples_per_s: float
    train_samples: int
    val_samples: int
    batch_size: int


class ClassMetrics(msgspec.Struct, frozen=True, kw_only=True):
    precision: float
    recall: float
    f1: float
    support: int


class TestMetrics(msgspec.Struct, frozen=True, kw_only=True):
    __test__ = False  # the name starts with "Test": keep pytest from collecting it

    accuracy: float
    loss: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]
    confusion_matrix: list[list[int]]
    """Rows are true classes, columns predicted ones, both in ``labels`` order."""
    labels: list[str]
    baseline_accuracy: float
    """Accuracy of always predicting the training split's most common class."""
    samples: int
    test_majority_accuracy: float = 0.0
    """Accuracy of always predicting the test split's own most common class: a
    hindsight bar (it knows the test period's regime) that a model should beat."""


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    architecture: str
    parameters: int
    size_bytes: int
    feature_names: list[str]
    input_features: int
    classes: list[str]


class ResourceUsage(msgspec.Struct, frozen=True, kw_only=True):
    device: str
    device_name: str
    mixed_precision: str
    peak_gpu_memory_bytes: int | None
    peak_rss_bytes: int


class ArtifactRef(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str
    model_path: str
    checksum_sha256: str
    object_name: str | None = None
    """Name in the model object store, when the job ran with NATS reachable."""


class TrainingPerformance(Reply, frozen=True, kw_only=True, tag="training.performance"):
    task_id: str
    executor: Executor
    host_id: str
    training: TrainingMetrics
    test: TestMetrics
    model: ModelInfo
    resources: ResourceUsage
    artifact: ArtifactRef
    history: list[EpochMetrics] = msgspec.field(default_factory=list)
