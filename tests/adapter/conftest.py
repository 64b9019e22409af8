"""Fixtures of the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from backend_adapter import TrainingRouter
from bus_contracts.subjects import Subjects
from embedded_nats import BusEndpoint
from tests.conftest import Bus

from . import RouterFactory, Workers, router_settings


@pytest.fixture
async def make_router(
    nats_bus: Bus, subjects: Subjects, tmp_path: Path
) -> AsyncIterator[RouterFactory]:
    """Opens routers on the test's subject root (each like a backend process of its
    own) and closes them all afterwards."""
    opened: list[TrainingRouter] = []

    async def make(
        endpoint: BusEndpoint | None = None,
        workers: Workers | None = None,
        clock: Callable[[], float] | None = None,
        **settings: Any,
    ) -> TrainingRouter:
        kwargs: dict[str, Any] = {"worker_factory": workers} if workers is not None else {}
        router = TrainingRouter(
            router_settings(subjects, tmp_path, **settings),
            endpoint=endpoint or nats_bus.endpoint("backend"),
            metrics_registry=CollectorRegistry(),
            clock=clock,
            **kwargs,
        )
        await router.open()
        opened.append(router)
        return router

    try:
        yield make
    finally:
        for router in reversed(opened):
            await router.aclose()
