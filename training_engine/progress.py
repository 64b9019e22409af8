"""How the engine reports progress and learns it should stop.

The engine knows nothing of NATS: it calls a :class:`ProgressSink`. The job
runtime implements the sink (sequencing, throttling, publishing); tests use a
list-collecting sink. ``percent`` is the engine's estimate for the whole job
(0–100); the runtime guarantees it never goes backwards on the wire.
"""

from __future__ import annotations

from typing import Protocol

from bus_contracts.messages.common import Phase
from bus_contracts.messages.performance import EpochMetrics

# Share of the job's percent each phase covers, in order; training takes most.
PHASE_SPANS: dict[Phase, tuple[float, float]] = {
    "loading_data": (0.0, 3.0),
    "computing_features": (3.0, 7.0),
    "labeling": (7.0, 10.0),
    "training": (10.0, 95.0),
    "evaluating": (95.0, 98.0),
    "saving": (98.0, 100.0),
}


class ProgressSink(Protocol):
    def phase(self, phase: Phase, percent: float, message: str = "") -> None:
        """A new phase begins."""

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
        """A batch finished. Called for every batch: the sink throttles."""

    def epoch(self, *, metrics: EpochMetrics, epochs: int, best: bool, percent: float) -> None:
        """An epoch finished (after validation)."""

    def batch_size_reduced(self, *, old: int, new: int, reason: str, percent: float) -> None:
        """Out of memory: the batch was halved and the step redone."""

    def should_stop(self) -> bool:
        """True once the job was asked to stop; checked at least every batch."""
