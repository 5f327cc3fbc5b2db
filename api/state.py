"""What routes take from the running app: the database's sessions and the service's clock
(tests of the edges inject their own clock as `app.state.clock`)."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from infra.db import utcnow


def app_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def app_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", utcnow)
    return clock


Sessions = Annotated[sessionmaker[Session], Depends(app_sessions)]
Clock = Annotated[Callable[[], datetime], Depends(app_clock)]
