"""Small fixtures shared by the engine's storage and artifact tests."""

from __future__ import annotations

from bus_contracts.messages import performance as perf
from training_engine.storage import ModelMetrics


def placeholder_metrics() -> ModelMetrics:
    """Metrics of the right shape for saving a model (their values do not matter)."""
    training = perf.TrainingMetrics(
        final_train_loss=1.0,
        final_train_accuracy=0.5,
        final_val_loss=1.0,
        final_val_accuracy=0.5,
        best_val_loss=1.0,
        best_epoch=1,
        epochs_run=1,
        early_stopped=False,
        duration_s=0.1,
        samples_per_s=10.0,
        train_samples=10,
        val_samples=5,
        batch_size=4,
    )
    test = perf.TestMetrics(
        accuracy=0.5,
        loss=1.0,
        macro_precision=0.5,
        macro_recall=0.5,
        macro_f1=0.5,
        per_class={},
        confusion_matrix=[[1]],
        labels=["BUY"],
        baseline_accuracy=0.3,
        samples=2,
    )
    return ModelMetrics(training=training, test=test, history=[])
