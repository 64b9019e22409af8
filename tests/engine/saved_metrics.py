"""Metrics for saving a model in the engine's storage and artifact tests."""

from __future__ import annotations

from tests.contracts.samples import PERFORMANCE
from training_engine.storage import ModelMetrics


def placeholder_metrics() -> ModelMetrics:
    """Metrics of the right shape for saving a model (their values do not matter)."""
    return ModelMetrics(
        training=PERFORMANCE.training, test=PERFORMANCE.test, history=PERFORMANCE.history
    )
