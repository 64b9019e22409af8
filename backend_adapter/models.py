"""Getting a trained model onto this filesystem, wherever it was trained.

A job that ran with the bus up has its model archive in the object store (its
name in the job's result, ``artifact_name``): it is downloaded and unpacked
(safely, and verified with the engine's :func:`load_model` checks) into
``dest_dir``. A local job that ran without the bus has only its model directory
on this filesystem: it is copied, and verified the same way.

The engine (and so torch) is imported only here, and only when a model is
fetched: importing the adapter stays light.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path

from nats.js.errors import NotFoundError, ObjectNotFoundError

from bus_contracts.errors import Conflict, NotFound
from job_runtime import JobRegistry

log = logging.getLogger(__name__)


async def fetch_model(
    task_id: str,
    dest_dir: Path | str,
    *,
    registry: JobRegistry | None,
    artifact_name: str | None,
    model_dir: Path | None = None,
) -> Path:
    """The model of ``task_id`` unpacked (or copied) into ``dest_dir``; returns its directory.

    ``artifact_name`` is the object store name from the job's result, ``model_dir``
    the model's directory on this filesystem when the job ran here. Raises
    :class:`NotFound` when neither is available.
    """
    dest = Path(dest_dir)
    on_disk = model_dir is not None and await asyncio.to_thread(model_dir.is_dir)
    if artifact_name is not None and registry is not None:
        try:
            data = await registry.get_artifact(artifact_name)
        except (ObjectNotFoundError, NotFoundError) as exc:
            if not on_disk:
                raise NotFound(
                    f"model archive {artifact_name} of job {task_id} is not in the object store"
                ) from exc
            log.warning("model.archive_missing task_id=%s object=%s", task_id, artifact_name)
        else:
            path = await asyncio.to_thread(_unpack, data, dest)
            log.info(
                "model.fetched task_id=%s object=%s bytes=%d path=%s",
                task_id,
                artifact_name,
                len(data),
                path,
            )
            return path
    if on_disk:
        assert model_dir is not None
        path = await asyncio.to_thread(_copy_verified, model_dir, dest)
        log.info("model.copied task_id=%s source=%s path=%s", task_id, model_dir, path)
        return path
    raise NotFound(
        f"the model of job {task_id} is neither in the object store nor on this filesystem"
    )


def _unpack(data: bytes, dest: Path) -> Path:
    from training_engine.artifact import unpack_artifact  # noqa: PLC0415 - torch, lazily

    return unpack_artifact(data, dest)


def _copy_verified(source: Path, dest: Path) -> Path:
    from training_engine.artifact import load_model  # noqa: PLC0415 - torch, lazily

    dest.mkdir(parents=True, exist_ok=True)
    final = dest / source.name
    if os.path.lexists(final):
        raise Conflict(f"{final} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=".copy-", dir=dest))
    try:
        staged = tmp / source.name
        shutil.copytree(source, staged)
        load_model(staged)
        os.rename(staged, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
