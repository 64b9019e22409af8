"""Fetching a trained model wherever it was trained, and when it cannot be had."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_adapter.models import fetch_model
from bus_contracts.errors import NotFound
from bus_contracts.messages.progress import Completed
from embedded_nats import BusEndpoint
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


async def test_a_missing_archive_falls_back_to_the_directory_or_is_not_found(
    make_router: RouterFactory, tmp_path: Path
) -> None:
    router = await make_router()
    accepted = await router.start(tiny_request("no-archive"))
    events = await collect(router.progress(accepted.task_id), 90)
    final = events[-1]
    assert isinstance(final, Completed)
    registry = router.registry
    assert registry is not None
    missing = "no-archive/elsewhere.tar.gz"  # as if the store had lost it

    found = await fetch_model(
        "no-archive",
        tmp_path / "a",
        registry=registry,
        artifact_name=missing,
        model_dir=Path(final.result.model_path),
    )
    assert (found / "metadata.json").is_file()
    with pytest.raises(NotFound, match="no-archive"):
        await fetch_model("no-archive", tmp_path / "b", registry=registry, artifact_name=missing)
