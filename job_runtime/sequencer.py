"""Turns a job's happenings into wire events: seq 1, 2, 3…, a timestamp, a
percent that never falls. Keeps the job's history for in-process followers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from bus_contracts.messages.progress import FINAL_EVENT_TYPES, ProgressEvent

E = TypeVar("E", bound=ProgressEvent)


class ProgressSequencer:
    def __init__(self, task_id: str, last_seq: int = 0, percent: float = 0.0) -> None:
        self.task_id = task_id
        self.last_seq = last_seq
        self.percent = percent

    def next(self, event_type: type[E], *, percent: float | None = None, **fields: Any) -> E:
        if percent is not None:
            self.percent = max(self.percent, min(100.0, percent))
        self.last_seq += 1
        return event_type(
            task_id=self.task_id,
            seq=self.last_seq,
            timestamp=dt.datetime.now(dt.UTC),
            percent=round(self.percent, 3),
            **fields,
        )


class EventLog:
    """Every event of one job, in order, for followers in this process."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self._changed = asyncio.Condition()

    async def append(self, event: ProgressEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    @property
    def finished(self) -> bool:
        return bool(self.events) and isinstance(self.events[-1], FINAL_EVENT_TYPES)

    async def follow(self, after_seq: int = 0) -> AsyncIterator[ProgressEvent]:
        """History after ``after_seq``, then live events, up to the final one."""
        index = 0
        while True:
            async with self._changed:
                while len(self.events) <= index:
                    await self._changed.wait()
                fresh = self.events[index:]
            index += len(fresh)
            for event in fresh:
                if event.seq > after_seq:
                    yield event
                if isinstance(event, FINAL_EVENT_TYPES):
                    return
