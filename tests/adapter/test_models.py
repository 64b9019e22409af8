"""Fetching a trained model wherever it was trained, and when it cannot be had."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nats.aio.client import Client

from bus_contracts.errors import NotFound
from bus_contracts.messages.progress import Completed
from bus_contracts.subjects import Subjects
from embedded_nats import BusEndpoint
from job_runtime import artifact_name
from training_engine.artifact import load_model

from . import RouterFactory, collect, tiny_request

pytestmark = pytest.mark.timeout(120)


async def test_a_model_trained_with_the_bus_down_is_copied_and_verified(
    make_router: RouterFactory, tmp_path: Path
) -> None:
    router = await make_router(endpoint=BusEndpoint("nats://127.0.0.1:9", "backend", "x"))
    accepted = await router.start(tiny_request("offline-model"))
    events = await collect(router.progress(accepted.task_id), 90)
    assert isinstance(events[-1], Completed)

    path = await router.fetch_model(accepted.task_id, tmp_path / "fetched")
    assert path.parent == tmp_path / "fetched"
    model = load_model(path)
    assert model.labels == ["BUY", "HOLD", "SELL"]


async def test_a_missing_archive_is_not_found(
    make_router: RouterFactory, backend_nc: Client, subjects: Subjects, tmp_path: Path
) -> None:
    router = await make_router()
    accepted = await router.start(tiny_request("lost-archive"))
    events = await collect(router.progress(accepted.task_id), 90)
    assert isinstance(events[-1], Completed)
    store = await backend_nc.jetstream().object_store(subjects.models_bucket)
    await store.delete(artifact_name("lost-archive"))
    # The job ran here, so its directory is still on this filesystem: that is used.
    assert (await router.fetch_model("lost-archive", tmp_path / "a")).is_dir()

    # Another machine has neither the archive nor the directory.
    final = events[-1]
    shutil.rmtree(final.result.model_path)
    other = await make_router()
    with pytest.raises(NotFound, match="lost-archive"):
        await other.fetch_model("lost-archive", tmp_path / "b")
