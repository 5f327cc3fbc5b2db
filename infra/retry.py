"""Database work that must not be lost: retried with backoff while the database is away.

Only faults of the database itself are retried (it is down, unreachable, read-only for a
while); anything else is a bug and is raised at once.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from infra.db import BlockingRunner

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 15.0
TRANSIENT = (OperationalError, InterfaceError)


async def until_stored(
    run_blocking: BlockingRunner,
    what: str,
    func: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run `func` off the loop until it succeeds, waiting 0.5 s, 1 s, 2 s ... (at most 15 s)
    between tries while the database fails; `what` names the work in the log."""
    delay = FIRST_DELAY_S
    tries = 0
    while True:
        try:
            result = await run_blocking(func, *args, **kwargs)
        except TRANSIENT as exc:
            tries += 1
            if tries == 1 or tries % 10 == 0:
                log.warning("%s: the database failed (try %d), retrying every %.1f s at most: "
                            "%s", what, tries, MAX_DELAY_S, type(exc.orig).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if tries:
            log.info("%s: stored after %d failed tries", what, tries)
        return result
