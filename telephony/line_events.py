"""What every driver of a sans-IO session on a line needs: a bounded queue of events, named
timers that put an event when they fire, and the tasks it spawned — all ended by `close()`."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 64
E = TypeVar("E")


class LineEvents(Generic[E]):
    def __init__(self, call_id: str) -> None:
        self._call_id = call_id
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[E] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def put(self, event: E) -> None:
        """Queue `event`; a full queue (a peer flooding us) drops it, with a warning."""
        if self._queue.full():
            log.warning("call %s: event queue full, dropping %s", self._call_id, event)
            return
        self._queue.put_nowait(event)

    async def next(self) -> E:
        return await self._queue.get()

    def start_timer(self, timer_id: str, seconds: float, fired: Callable[[str], E]) -> None:
        """In `seconds`, put `fired(timer_id)` (unless the timer is cancelled first)."""
        self._timers[timer_id] = self._loop.call_later(seconds, self._fire, timer_id, fired)

    def cancel_timer(self, timer_id: str) -> None:
        handle = self._timers.pop(timer_id, None)
        if handle is not None:
            handle.cancel()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Cancel every timer and task."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

    def _fire(self, timer_id: str, fired: Callable[[str], E]) -> None:
        self._timers.pop(timer_id, None)
        self.put(fired(timer_id))
