"""Fixtures of the adapter tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from backend_adapter import TrainingRouter
from bus_contracts.subjects import Subjects
from embedded_nats import BusEndpoint
from tests.conftest import Bus

from . import RouterFactory, Workers, router_settings


@pytest.fixture(autouse=True)
async def _drop_jetstream_resources(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After a test on the shared server, delete the stream and buckets of its root,
    so that a long session leaves the server's store as it found it."""
    if "subjects" not in request.fixturenames or "nats_bus" not in request.fixturenames:
        yield
        return
    subjects: Subjects = request.getfixturevalue("subjects")
    bus: Bus = request.getfixturevalue("nats_bus")
    yield
    nc = await bus.connect("backend", name="cleanup")
    try:
        js = nc.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(subjects.progress_stream)
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(subjects.jobs_bucket)
        with contextlib.suppress(NotFoundError):
            await js.delete_object_store(subjects.models_bucket)
    finally:
        await nc.close()


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
