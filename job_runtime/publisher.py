"""Publishes a job's events to JetStream in order, without ever holding up the job.

Each job has its own queue and task: events go out one by one with a
``Nats-Msg-Id`` of ``<task id>:<seq>``, retried until acknowledged. A retry after
a lost acknowledgement or a server restart is dropped by the stream as a
duplicate, so the stored history has every seq exactly once.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from bus_contracts.codec import encode
from bus_contracts.messages.progress import ProgressEvent
from bus_contracts.subjects import Subjects

log = logging.getLogger(__name__)

_ACK_TIMEOUT_S = 2.0
_RETRY_DELAYS_S = (0.05, 0.1, 0.25, 0.5, 1.0)


class EventPublisher:
    def __init__(self, js: JetStreamContext, subjects: Subjects, task_id: str) -> None:
        self._js = js
        self._subject = subjects.progress(task_id)
        self._task_id = task_id
        self._queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name=f"publish-{task_id}")

    def publish(self, event: ProgressEvent) -> None:
        """Queue an event; never waits."""
        self._queue.put_nowait(event)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (up to ``timeout_s``), then stop."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.warning(
                "progress.publish_abandoned task_id=%s subject=%s pending=%d",
                self._task_id,
                self._subject,
                self._queue.qsize(),
            )
            self._task.cancel()

    async def _run(self) -> None:
        while (event := await self._queue.get()) is not None:
            await self._send(event)

    async def _send(self, event: ProgressEvent) -> None:
        data = encode(event)
        headers = {"Nats-Msg-Id": f"{self._task_id}:{event.seq}"}
        attempt = 0
        while True:
            try:
                await self._js.publish(self._subject, data, timeout=_ACK_TIMEOUT_S, headers=headers)
                return
            except (nats.errors.Error, APIError, TimeoutError, OSError) as exc:
                delay = _RETRY_DELAYS_S[min(attempt, len(_RETRY_DELAYS_S) - 1)]
                attempt += 1
                log.warning(
                    "progress.publish_retry task_id=%s subject=%s seq=%d attempt=%d error=%s",
                    self._task_id,
                    self._subject,
                    event.seq,
                    attempt,
                    exc,
                )
                await asyncio.sleep(delay)
