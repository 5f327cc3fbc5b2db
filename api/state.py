"""What routes take from the running app: the database's sessions, the service's clock (tests of
the edges inject their own clock as `app.state.clock`) and the services of what callers hear."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.uploads import LIMITS
from audio.isolated import IsolatedDecoder
from audio.upload import Clip
from campaigns.hold_sounds import HoldSounds
from campaigns.hold_stats import HoldStats
from campaigns.hold_tips import HoldTips
from campaigns.prompt_recordings import PromptRecordings
from infra.db import utcnow


def app_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def app_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", utcnow)
    return clock


Sessions = Annotated[sessionmaker[Session], Depends(app_sessions)]
Clock = Annotated[Callable[[], datetime], Depends(app_clock)]


@dataclass(frozen=True)
class SoundServices:
    """What callers hear, as marketing keeps it (the hold-tips and prompts API and page)."""

    tips: HoldTips
    stats: HoldStats
    recordings: PromptRecordings
    sounds: HoldSounds
    decoder: IsolatedDecoder  # closed with the app

    async def decoded(self, data: bytes | None, filename: str) -> Clip:
        """An uploaded file decoded for the line, in a worker process (audio/isolated.py: a
        file that crashes the decoder cannot crash the service); `UploadRefused` otherwise
        (no file at all counts as an empty one)."""
        return await self.decoder.decode(data or b"", filename, LIMITS)


def app_sounds(request: Request) -> SoundServices:
    sounds: SoundServices = request.app.state.sounds
    return sounds


Sounds = Annotated[SoundServices, Depends(app_sounds)]
