"""Recorded voices for the robot's prompts: marketing uploads a recording of a prompt in a
locale, and every call that would speak that prompt in that locale plays the recording instead.

Which prompts can be recorded: those that speak no value of the call itself (see
`ivr.catalog.PromptText.call_values`). A prompt with an amount, a date, a name stays synthetic —
a recording cannot say every amount — and the page says so; the company's name is configuration,
the same in every call, so a recording may say it.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audio.prompts import EncodedPrompt
from audio.upload import Clip
from campaigns.audio_clips import ClipInfo, ClipPrompts, clip_info, clip_infos, store_clip
from campaigns.hold_errors import NotFound, PromptHasValues
from campaigns.hold_models import PromptRecording
from campaigns.models import AuditEntry
from infra.db import transaction
from ivr.catalog import FlowCatalog, PromptText

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptView:
    text: PromptText
    recording: ClipInfo | None

    @property
    def recordable(self) -> bool:
        return not self.text.call_values


class PromptRecordings:
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime],
                 catalog: FlowCatalog, clips: ClipPrompts) -> None:
        self._sessions = sessions
        self._clock = clock
        self._catalog = catalog
        self._clips = clips
        self._texts = catalog.prompt_texts()  # the catalog never changes while we run
        self._recordable = {(text.prompt_id, text.locale) for text in self._texts
                            if not text.call_values}

    def list(self) -> list[PromptView]:
        """Every prompt in every locale, with its recording where there is one."""
        with self._sessions() as session:
            recorded = {(row.prompt_id, row.locale): row.clip_id
                        for row in session.scalars(select(PromptRecording))}
            infos = clip_infos(session, set(recorded.values()))
        return [PromptView(text, infos.get(recorded.get((text.prompt_id, text.locale), "")))
                for text in self._texts]

    def get(self, prompt_id: str, locale: str) -> PromptView:
        text = next((text for text in self._texts
                     if (text.prompt_id, text.locale) == (prompt_id, locale)), None)
        if text is None:
            raise NotFound("prompt", f"{prompt_id} ({locale})")
        with self._sessions() as session:
            row = session.get(PromptRecording, (prompt_id, locale))
            return PromptView(text, None if row is None else clip_info(session, row.clip_id))

    def spoken(self, prompt_id: str, locale: str) -> tuple[PromptView, str]:
        """The prompt and the words its speech says (the company's name filled in as a call
        fills it); `PromptHasValues` for a prompt that speaks a call's own values, whose words
        differ from call to call."""
        view = self.get(prompt_id, locale)
        if view.text.call_values:
            raise _has_values(view.text)
        return view, self._catalog.words(view.text)

    def record(self, actor: str, prompt_id: str, locale: str, clip: Clip, name: str
               ) -> PromptView:
        """Play `clip` for the prompt from now on (it replaces an earlier recording)."""
        text = self.get(prompt_id, locale).text
        if text.call_values:
            raise _has_values(text)
        now = self._clock()
        with transaction(self._sessions) as session:
            info = store_clip(session, clip, name, actor, now)
            row = session.get(PromptRecording, (prompt_id, locale))
            before = None if row is None else row.clip_id
            if row is None:
                row = PromptRecording(prompt_id=prompt_id, locale=locale)
                session.add(row)
            row.clip_id, row.updated_by, row.updated_at = info.id, actor, now
            _audit(session, now, actor, "prompt.record", prompt_id, locale,
                   {"clip_id": [before, info.id], "file": name})
        return PromptView(text, info)

    def remove(self, actor: str, prompt_id: str, locale: str) -> PromptView:
        """Speak the prompt again (drop its recording)."""
        text = self.get(prompt_id, locale).text
        now = self._clock()
        with transaction(self._sessions) as session:
            row = session.get(PromptRecording, (prompt_id, locale))
            if row is None:
                raise NotFound("recording", f"of {prompt_id} ({locale})")
            session.execute(delete(PromptRecording).where(
                PromptRecording.prompt_id == prompt_id, PromptRecording.locale == locale))
            _audit(session, now, actor, "prompt.unrecord", prompt_id, locale,
                   {"clip_id": [row.clip_id, None]})
        return PromptView(text, None)

    async def for_locale(self, locale: str) -> Mapping[str, EncodedPrompt]:
        """prompt id -> the recording to play, for the recordable prompts recorded in
        `locale` (what a call in that locale plays instead of speech)."""
        try:
            clips = await asyncio.to_thread(self._recorded, locale)
            return {prompt_id: await self._clips.prompt(clip_id)
                    for prompt_id, clip_id in clips.items()
                    if (prompt_id, locale) in self._recordable}
        except SQLAlchemyError as exc:  # the call goes on in the synthetic voice
            log.warning("recorded prompts for %s unavailable, speaking instead: %s", locale, exc)
            return {}

    def _recorded(self, locale: str) -> dict[str, str]:
        with self._sessions() as session:
            rows = session.execute(select(PromptRecording.prompt_id, PromptRecording.clip_id)
                                   .where(PromptRecording.locale == locale))
            return {prompt_id: clip_id for prompt_id, clip_id in rows}


def _has_values(text: PromptText) -> PromptHasValues:
    return PromptHasValues(
        f"{text.prompt_id} speaks the call's own {', '.join(text.call_values)}: it stays "
        "synthetic, so a recording of it cannot be used")


def _audit(session: Session, now: datetime, actor: str, action: str, prompt_id: str,
           locale: str, details: dict[str, object]) -> None:
    session.add(AuditEntry(at=now, actor=actor, action=action,
                           target=f"prompt:{prompt_id}:{locale}", details=details))
