"""What the backend imports to train: a router that sends jobs to a host trainer
over NATS, or runs them in this container when it must, with the same results.

Start with :class:`TrainingRouter` (see :mod:`backend_adapter.router`).
"""

from backend_adapter.breaker import (
    BreakerState,
    CircuitBreaker,
    Ticket,
    TicketOutcome,
    TransitionListener,
)
from backend_adapter.following import IdleCheck, follow_progress
from backend_adapter.local import LOCAL_DEVICE, LocalBus, LocalExecutor, local_owner
from backend_adapter.metrics import (
    BREAKER_STATE_VALUE,
    FALLBACK_REASONS,
    ROUTES,
    FallbackReason,
    Route,
    RouterMetrics,
)
from backend_adapter.models import fetch_model
from backend_adapter.router import HostUnavailable, TrainingRouter
from backend_adapter.settings import RouterSettings, SettingsError

__all__ = [
    "BREAKER_STATE_VALUE",
    "FALLBACK_REASONS",
    "LOCAL_DEVICE",
    "ROUTES",
    "BreakerState",
    "CircuitBreaker",
    "FallbackReason",
    "HostUnavailable",
    "IdleCheck",
    "LocalBus",
    "LocalExecutor",
    "Route",
    "RouterMetrics",
    "RouterSettings",
    "SettingsError",
    "Ticket",
    "TicketOutcome",
    "TrainingRouter",
    "TransitionListener",
    "fetch_model",
    "follow_progress",
    "local_owner",
]
