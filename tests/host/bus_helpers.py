"""Small helpers for driving a host trainer over the bus with raw JSON."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from bus_contracts.codec import decode_event
from bus_contracts.messages.progress import FINAL_EVENT_TYPES, ProgressEvent
from bus_contracts.subjects import Subjects


def quick_request(task_id: str | None = None, *, epochs: int = 2, **extra: Any) -> dict[str, Any]:
    """A real training request kept short: recent SPX bars, few epochs."""
    body: dict[str, Any] = {
        "symbols": ["SPX"],
        "timeframe": "1d",
        "start_date": "2012-01-01",
        "strategy": {"training": {"epochs": epochs, "early_stopping": {"enabled": False}}},
        "device": "cpu",
    }
    if task_id is not None:
        body["task_id"] = task_id
    body.update(extra)
    return body


async def request_json(
    nc: Client, subject: str, body: Any = None, timeout_s: float = 5.0
) -> tuple[dict[str, Any], Msg]:
    payload = b"" if body is None else json.dumps(body).encode()
    reply = await nc.request(subject, payload, timeout=timeout_s)
    return json.loads(reply.data), reply


class ProgressCollector:
    """Collects every progress event under a root, per task id (core NATS, live)."""

    def __init__(self) -> None:
        self.events: dict[str, list[ProgressEvent]] = defaultdict(list)
        self._changed = asyncio.Event()
        self._sub: Subscription | None = None

    async def start(self, nc: Client, subjects: Subjects) -> ProgressCollector:
        async def on_msg(msg: Msg) -> None:
            event = decode_event(msg.data)
            if event is not None:
                self.events[event.task_id].append(event)
                self._changed.set()

        self._sub = await nc.subscribe(subjects.progress_wildcard, cb=on_msg)
        await nc.flush()
        await asyncio.sleep(0)
        await nc.flush()
        return self

    def final(self, task_id: str) -> ProgressEvent | None:
        events = self.events.get(task_id, [])
        return events[-1] if events and isinstance(events[-1], FINAL_EVENT_TYPES) else None

    async def wait_final(self, task_id: str, timeout_s: float = 60.0) -> ProgressEvent:
        return await self.wait_for(task_id, lambda e: isinstance(e, FINAL_EVENT_TYPES), timeout_s)

    async def wait_for(
        self, task_id: str, predicate: Any, timeout_s: float = 60.0
    ) -> ProgressEvent:
        async def _wait() -> ProgressEvent:
            while True:
                for event in self.events.get(task_id, []):
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout_s)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


def seqs(events: list[ProgressEvent]) -> list[int]:
    return [event.seq for event in events]
