"""The router's Prometheus metrics, built against a registry the caller owns.

No job ids as labels: a label's values are the fixed sets below.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from backend_adapter.breaker import BreakerState

Route = Literal["host", "local"]
FallbackReason = Literal[
    "no_responders", "timeout", "server_error", "breaker_open", "bus_unreachable", "disabled"
]
ROUTES: tuple[Route, ...] = ("host", "local")
FALLBACK_REASONS: tuple[FallbackReason, ...] = (
    "no_responders",
    "timeout",
    "server_error",
    "breaker_open",
    "bus_unreachable",
    "disabled",
)
BREAKER_STATE_VALUE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
_DECISION_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.routes = Counter(
            "training_router_routes_total",
            "Training starts by where they were sent.",
            ["route"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "training_router_fallbacks_total",
            "Training starts run in this container instead of on a host trainer, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "training_router_breaker_state",
            "Circuit breaker in front of the host trainer: 0 closed, 1 half-open, 2 open.",
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "training_router_breaker_transitions_total",
            "Circuit breaker state changes, by the state entered.",
            ["to"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "training_router_decision_seconds",
            "Time from a start request to knowing where the job runs.",
            buckets=_DECISION_BUCKETS_S,
            registry=self.registry,
        )
        for route in ROUTES:
            self.routes.labels(route=route)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason=reason)
        for state in BREAKER_STATE_VALUE:
            self.breaker_transitions.labels(to=state)
        self.breaker_state.set(0)

    def record_route(self, route: Route, decision_s: float) -> None:
        self.routes.labels(route=route).inc()
        self.decision_seconds.observe(decision_s)

    def record_fallback(self, reason: FallbackReason) -> None:
        self.fallbacks.labels(reason=reason).inc()

    def on_breaker_transition(self, old: BreakerState, new: BreakerState) -> None:
        self.breaker_state.set(BREAKER_STATE_VALUE[new])
        self.breaker_transitions.labels(to=new).inc()
