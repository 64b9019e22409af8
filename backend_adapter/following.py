"""Following one job's progress: its history first, then live events, up to the end.

With NATS, an ordered JetStream consumer (deliver all) on the progress stream,
filtered to the job's subject: a follower that arrives late, or after the job
finished, replays everything in order. Without NATS, the local runner's
in-process :class:`~job_runtime.EventLog`.

Either way a follower sees each ``seq`` once, rising: an event whose ``seq`` is
not above the last one yielded (a re-publish after a retry or a reconnect) is
dropped. Event types this version does not know are skipped. The iteration
ends after the final event (completed, failed or cancelled).

Close the iterator when leaving early (``contextlib.aclosing``), so the
consumer is deleted at once rather than when the generator is collected.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

import nats.errors
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from bus_contracts.codec import decode_event
from bus_contracts.errors import ReplyDecodeError
from bus_contracts.messages.progress import FINAL_EVENT_TYPES, ProgressEvent
from bus_contracts.subjects import Subjects
from job_runtime import EventLog

log = logging.getLogger(__name__)

IdleCheck = Callable[[], Awaitable[bool]]
"""Called when no event came for ``idle_s``; True ends the iteration (say, the job
is lost, so no final event will ever come)."""

_HEARTBEAT_S = 2.0


async def follow_progress(
    task_id: str,
    *,
    js: JetStreamContext | None = None,
    subjects: Subjects | None = None,
    events: EventLog | None = None,
    after_seq: int = 0,
    idle_s: float = 5.0,
    on_idle: IdleCheck | None = None,
) -> AsyncGenerator[ProgressEvent, None]:
    """The events of ``task_id`` with ``seq`` above ``after_seq``, until the final one.

    Give ``events`` (an in-process job) or ``js`` and ``subjects`` (any job on the bus).
    """
    source: AsyncGenerator[ProgressEvent, None]
    if events is not None:
        source = _from_log(events, after_seq)
    elif js is not None and subjects is not None:
        source = _from_stream(js, subjects, task_id, after_seq, idle_s, on_idle)
    else:
        raise ValueError("follow_progress needs an EventLog, or JetStream and subjects")
    last = after_seq
    async with contextlib.aclosing(source):
        async for event in source:
            if event.task_id != task_id:
                continue
            if event.seq <= last:
                log.debug(
                    "progress.duplicate_dropped task_id=%s seq=%d last=%d",
                    task_id,
                    event.seq,
                    last,
                )
                continue
            last = event.seq
            yield event
            if isinstance(event, FINAL_EVENT_TYPES):
                return


async def _from_log(events: EventLog, after_seq: int) -> AsyncGenerator[ProgressEvent, None]:
    async for event in events.follow(after_seq):
        yield event


async def _from_stream(
    js: JetStreamContext,
    subjects: Subjects,
    task_id: str,
    after_seq: int,
    idle_s: float,
    on_idle: IdleCheck | None,
) -> AsyncGenerator[ProgressEvent, None]:
    subject = subjects.progress(task_id)
    sub = await js.subscribe(
        subject,
        stream=subjects.progress_stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        idle_heartbeat=_HEARTBEAT_S,
    )
    log.debug("progress.following task_id=%s subject=%s", task_id, subject)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_s)
            except nats.errors.TimeoutError:
                if on_idle is not None and await on_idle():
                    log.info("progress.follow_ended_idle task_id=%s subject=%s", task_id, subject)
                    return
                continue
            try:
                event = decode_event(msg.data)
            except ReplyDecodeError as exc:
                log.warning(
                    "progress.undecodable task_id=%s subject=%s error=%s", task_id, subject, exc
                )
                continue
            if event is not None and event.seq > after_seq:
                yield event
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
