"""The training engine: data → indicators → fuzzy features → labels → MLP →
metrics → saved model. No NATS in here; progress goes to a ``ProgressSink``.

The public names below are imported lazily (PEP 562), so that importing
``training_engine.progress`` or ``training_engine.errors`` from the NATS side
does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training_engine.artifact import (
        ArtifactError,
        LoadedModel,
        Predictions,
        load_model,
        pack_artifact,
        unpack_artifact,
    )
    from training_engine.dataset import Dataset, build_dataset, split_indices
    from training_engine.devices import (
        Precision,
        apply_memory_cap,
        choose_precision,
        list_devices,
        memory_summary,
        resolve_device,
    )
    from training_engine.errors import (
        BadData,
        BadStrategy,
        DataNotFound,
        DeviceUnavailable,
        EngineError,
        TrainingCancelled,
        TrainingFailed,
    )
    from training_engine.loop import LoopConfig, TrainResult, evaluate, train
    from training_engine.metrics import compute_test_metrics, confusion_matrix
    from training_engine.model import MLP, build_model
    from training_engine.progress import PHASE_SPANS, ProgressSink
    from training_engine.run import TrainingOutcome, run_training
    from training_engine.storage import ModelMetadata, SavedModel, latest_model, save_model

_EXPORTS: dict[str, str] = {
    "ArtifactError": "artifact",
    "LoadedModel": "artifact",
    "Predictions": "artifact",
    "load_model": "artifact",
    "pack_artifact": "artifact",
    "unpack_artifact": "artifact",
    "Dataset": "dataset",
    "build_dataset": "dataset",
    "split_indices": "dataset",
    "Precision": "devices",
    "apply_memory_cap": "devices",
    "choose_precision": "devices",
    "list_devices": "devices",
    "memory_summary": "devices",
    "resolve_device": "devices",
    "BadData": "errors",
    "BadStrategy": "errors",
    "DataNotFound": "errors",
    "DeviceUnavailable": "errors",
    "EngineError": "errors",
    "TrainingCancelled": "errors",
    "TrainingFailed": "errors",
    "LoopConfig": "loop",
    "TrainResult": "loop",
    "evaluate": "loop",
    "train": "loop",
    "compute_test_metrics": "metrics",
    "confusion_matrix": "metrics",
    "MLP": "model",
    "build_model": "model",
    "PHASE_SPANS": "progress",
    "ProgressSink": "progress",
    "TrainingOutcome": "run",
    "run_training": "run",
    "ModelMetadata": "storage",
    "SavedModel": "storage",
    "latest_model": "storage",
    "save_model": "storage",
}

__all__ = [
    "MLP",
    "PHASE_SPANS",
    "ArtifactError",
    "BadData",
    "BadStrategy",
    "DataNotFound",
    "Dataset",
    "DeviceUnavailable",
    "EngineError",
    "LoadedModel",
    "LoopConfig",
    "ModelMetadata",
    "Precision",
    "Predictions",
    "ProgressSink",
    "SavedModel",
    "TrainResult",
    "TrainingCancelled",
    "TrainingFailed",
    "TrainingOutcome",
    "apply_memory_cap",
    "build_dataset",
    "build_model",
    "choose_precision",
    "compute_test_metrics",
    "confusion_matrix",
    "evaluate",
    "latest_model",
    "list_devices",
    "load_model",
    "memory_summary",
    "pack_artifact",
    "resolve_device",
    "run_training",
    "save_model",
    "split_indices",
    "train",
    "unpack_artifact",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'training_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"training_engine.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
