"""Background tasks that never die unobserved: an exception is logged once, with the task's
name, and counted (`ringback_background_errors_total{task}`) instead of waiting for garbage
collection to print "Task exception was never retrieved"."""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

ErrorCounter = Callable[[str], None]  # called with the task's kind on every failure
# A failure that repeats (the database is away and every tick fails) is logged at most this
# often per kind, with the number of failures since the last line.
REPEAT_LOG_S = 30.0


def _no_count(_kind: str) -> None:
    return None


class TaskSupervisor:
    """Starts tasks and watches them; `kind` names a family of tasks in logs and metrics."""

    def __init__(self, count_error: ErrorCounter = _no_count) -> None:
        self._count_error = count_error
        self._tasks: set[asyncio.Task[Any]] = set()
        self._quiet_until: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def spawn(self, coroutine: Coroutine[Any, Any, T], kind: str, name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, kind))
        return task

    def report(self, kind: str, exc: BaseException) -> None:
        """Count and log a failure the caller caught itself (a periodic tick, say)."""
        self._count_error(kind)
        now = time.monotonic()
        if now < self._quiet_until.get(kind, 0.0):
            self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
            return
        self._quiet_until[kind] = now + REPEAT_LOG_S
        more = self._unlogged.pop(kind, 0)
        log.warning("%s failed%s: %s: %s", kind, f" ({more} more times since)" if more else "",
                    type(exc).__name__, _first_line(exc))

    def _finished(self, task: asyncio.Task[Any], kind: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._count_error(kind)
            log.error("background task %s (%s) died", task.get_name(), kind, exc_info=exc)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
