"""Fixtures of the adapter tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.js.errors import NotFoundError

from bus_contracts.subjects import Subjects
from tests.conftest import Bus


@pytest.fixture(autouse=True)
async def _drop_jetstream_resources(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After a test on the shared server, delete the stream and buckets of its root.

    Each progress stream reserves its byte limit (1 GiB) of the server's file
    store (8 GB): without this, the ninth test root on one server is refused
    with "insufficient storage resources".
    """
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
