"""The job registry: JetStream KV of job records, plus the object store of artifacts.

A task id is claimed by creating its record (create-if-absent), so whichever of
the host trainers and the in-container fallback creates it first runs it, and
nobody else ever does. Updates are compare-and-set on the record's revision.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterable

import msgspec
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from bus_contracts.codec import encode
from bus_contracts.messages.performance import TrainingPerformance
from bus_contracts.subjects import Subjects
from job_runtime.records import JobRecord
from job_runtime.resources import ensure_jobs_bucket, ensure_models_bucket, ensure_progress_stream

log = logging.getLogger(__name__)

_decode_record = msgspec.json.Decoder(JobRecord).decode
_decode_performance = msgspec.json.Decoder(TrainingPerformance).decode
_CAS_ATTEMPTS = 50


class JobRegistry:
    def __init__(self, kv: KeyValue, objects: ObjectStore) -> None:
        self._kv = kv
        self._objects = objects

    @classmethod
    async def open(cls, js: JetStreamContext, subjects: Subjects) -> JobRegistry:
        await ensure_progress_stream(js, subjects)
        kv = await ensure_jobs_bucket(js, subjects)
        objects = await ensure_models_bucket(js, subjects)
        return cls(kv, objects)

    async def claim(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Create the record; if the task id exists, return the existing one instead."""
        try:
            await self._kv.create(record.task_id, encode(record))
        except KeyWrongLastSequenceError:
            existing = await self.get(record.task_id)
            if existing is None:  # deleted between the two calls: try once more
                return await self.claim(record)
            return existing, False
        return record, True

    async def get(self, task_id: str) -> JobRecord | None:
        try:
            entry = await self._kv.get(task_id)
        except KeyNotFoundError:
            return None
        return _decode_record(entry.value) if entry.value else None

    async def update(self, task_id: str, change: Callable[[JobRecord], JobRecord]) -> JobRecord:
        """Apply ``change`` to the current record, retrying when someone else wrote first."""
        for _ in range(_CAS_ATTEMPTS):
            entry = await self._kv.get(task_id)
            assert entry.value is not None and entry.revision is not None
            new = change(_decode_record(entry.value))
            try:
                await self._kv.update(task_id, encode(new), last=entry.revision)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0)
                continue
            return new
        raise RuntimeError(f"registry update of {task_id} lost {_CAS_ATTEMPTS} races in a row")

    async def all(self) -> list[JobRecord]:
        watcher = await self._kv.watchall(ignore_deletes=True)
        records: list[JobRecord] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.value:
                    records.append(_decode_record(entry.value))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return records

    async def put_performance(self, performance: TrainingPerformance) -> None:
        await self._objects.put(_performance_name(performance.task_id), encode(performance))

    async def get_performance(self, task_id: str) -> TrainingPerformance | None:
        try:
            result = await self._objects.get(_performance_name(task_id))
        except ObjectNotFoundError:
            return None
        assert result.data is not None
        return _decode_performance(result.data)

    async def put_artifact(self, name: str, data: bytes) -> None:
        await self._objects.put(name, data)

    async def get_artifact(self, name: str) -> bytes:
        # writeinto avoids nats-py's quadratic concatenation of chunks.
        buffer = io.BytesIO()
        await self._objects.get(name, writeinto=buffer)
        return buffer.getvalue()


def artifact_name(task_id: str) -> str:
    return f"{task_id}/model.tar.gz"


def _performance_name(task_id: str) -> str:
    return f"{task_id}/performance.json"


def newest_first(records: Iterable[JobRecord]) -> list[JobRecord]:
    return sorted(records, key=lambda record: record.created_at, reverse=True)
