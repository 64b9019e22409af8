"""Tests of the training engine, and the helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bus_contracts.messages.common import Phase
from bus_contracts.messages.performance import EpochMetrics


@dataclass
class RecordingSink:
    """A ProgressSink that records every call; ``stop_after_batches`` asks to stop."""

    stop_after_batches: int | None = None
    phases: list[tuple[Phase, float, str]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[tuple[EpochMetrics, bool, float]] = field(default_factory=list)
    reductions: list[tuple[int, int, str]] = field(default_factory=list)
    percents: list[float] = field(default_factory=list)
    stop_checks: int = 0

    def phase(self, phase: Phase, percent: float, message: str = "") -> None:
        self.phases.append((phase, percent, message))
        self.percents.append(percent)

    def batch(self, **kwargs: Any) -> None:
        self.batches.append(kwargs)
        self.percents.append(kwargs["percent"])

    def epoch(self, *, metrics: EpochMetrics, epochs: int, best: bool, percent: float) -> None:
        self.epochs.append((metrics, best, percent))
        self.percents.append(percent)

    def batch_size_reduced(self, *, old: int, new: int, reason: str, percent: float) -> None:
        self.reductions.append((old, new, reason))
        self.percents.append(percent)

    def should_stop(self) -> bool:
        self.stop_checks += 1
        return self.stop_after_batches is not None and len(self.batches) >= self.stop_after_batches


def synthetic(
    rows: int = 2000, features: int = 12, classes: int = 3, seed: int = 0, noise: float = 1.0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Learnable data: the class is the argmax of a fixed linear map plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    w = rng.normal(size=(features, classes))
    y = np.argmax(x @ w + noise * rng.normal(size=(rows, classes)), axis=1).astype(np.int64)
    return x, y
