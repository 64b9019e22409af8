"""The JetStream resources of the registry: created once, idempotently."""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from bus_contracts.subjects import Subjects

PROGRESS_MAX_AGE_S = 7 * 24 * 3600
PROGRESS_MAX_MSGS_PER_JOB = 100_000
# Bounded by age and message counts, not by max_bytes: JetStream reserves a
# stream's max_bytes from the server's store up front, so a byte cap would hold
# space whether or not it is used. The server's max_file_store caps the total.
PROGRESS_MAX_MSGS = 5_000_000
# Re-published events (a retry after a lost ack, a server restart) are dropped by
# the stream within this window: it must outlast any realistic outage.
DUPLICATE_WINDOW_S = 10 * 60


async def ensure_progress_stream(js: JetStreamContext, subjects: Subjects) -> None:
    config = StreamConfig(
        name=subjects.progress_stream,
        subjects=[subjects.progress_wildcard],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=PROGRESS_MAX_AGE_S,
        max_msgs_per_subject=PROGRESS_MAX_MSGS_PER_JOB,
        max_msgs=PROGRESS_MAX_MSGS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
    )
    try:
        await js.stream_info(subjects.progress_stream)
    except NotFoundError:
        await js.add_stream(config)


async def ensure_jobs_bucket(js: JetStreamContext, subjects: Subjects) -> KeyValue:
    try:
        return await js.key_value(subjects.jobs_bucket)
    except BucketNotFoundError:
        return await js.create_key_value(
            bucket=subjects.jobs_bucket,
            history=5,
            storage=StorageType.FILE,
            description="training job records, one key per task id",
        )


async def ensure_models_bucket(js: JetStreamContext, subjects: Subjects) -> ObjectStore:
    try:
        return await js.object_store(subjects.models_bucket)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(
            bucket=subjects.models_bucket,
            description="trained model artifacts and performance reports",
            storage=StorageType.FILE,
        )
