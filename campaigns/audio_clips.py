"""Uploaded audio after conversion, kept in the database by content (see hold_models.AudioClip)."""

import asyncio
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audio.prompts import EncodedPrompt, PromptCache
from audio.upload import Clip
from campaigns.hold_errors import NotFound
from campaigns.hold_models import AudioClip

_REMEMBERED_CLIPS = 128


@dataclass(frozen=True)
class ClipInfo:
    """An upload as the page shows it (without its samples)."""

    id: str
    duration_s: float
    source_name: str
    source_format: str
    loudness_lufs: float | None
    gain_db: float
    uploaded_by: str
    uploaded_at: datetime


def _info(row: AudioClip) -> ClipInfo:
    return ClipInfo(row.id, row.duration_s, row.source_name, row.source_format,
                    row.loudness_lufs, row.gain_db, row.uploaded_by, row.uploaded_at)


def describe_source(clip: Clip) -> str:
    source = clip.source
    return f"{source.format} {source.subtype}, {source.rate} Hz, {source.channels} ch"


def store_clip(session: Session, clip: Clip, name: str, actor: str, now: datetime) -> ClipInfo:
    """Keep `clip` (once: the same sound uploaded again is the row already there)."""
    clip_id = clip_key(clip.pcm16)
    row = session.get(AudioClip, clip_id)
    if row is None:
        row = AudioClip(id=clip_id, pcm16=clip.pcm16, duration_s=clip.duration_s,
                        source_name=name[:200], source_format=describe_source(clip)[:100],
                        loudness_lufs=clip.loudness_lufs, gain_db=clip.gain_db,
                        uploaded_by=actor, uploaded_at=now)
        session.add(row)
        session.flush()
    return _info(row)


def clip_key(pcm16: bytes) -> str:
    return hashlib.sha256(pcm16).hexdigest()


def clip_info(session: Session, clip_id: str) -> ClipInfo:
    row = session.get(AudioClip, clip_id)
    if row is None:
        raise NotFound("clip", clip_id)
    return _info(row)


def clip_infos(session: Session, clip_ids: set[str]) -> dict[str, ClipInfo]:
    if not clip_ids:
        return {}
    rows = session.scalars(select(AudioClip).where(AudioClip.id.in_(clip_ids)))
    return {row.id: _info(row) for row in rows}


def clip_samples(session: Session, clip_id: str) -> bytes:
    """The clip's 8 kHz mono 16-bit samples."""
    pcm = session.scalar(select(AudioClip.pcm16).where(AudioClip.id == clip_id))
    if pcm is None:
        raise NotFound("clip", clip_id)
    return pcm


class ClipPrompts:
    """Clips ready for the line, made from the database once and remembered by id (a clip's
    id is its content, so it never changes)."""

    def __init__(self, sessions: sessionmaker[Session], prompts: PromptCache) -> None:
        self._sessions = sessions
        self._prompts = prompts
        self._encoded: OrderedDict[str, EncodedPrompt] = OrderedDict()
        self._lock = threading.Lock()

    async def prompt(self, clip_id: str) -> EncodedPrompt:
        with self._lock:
            found = self._encoded.get(clip_id)
        return found if found is not None else await asyncio.to_thread(self._encode, clip_id)

    def _encode(self, clip_id: str) -> EncodedPrompt:
        with self._sessions() as session:
            pcm = clip_samples(session, clip_id)
        prompt = self._prompts.from_clip(pcm)
        with self._lock:
            self._encoded[clip_id] = prompt
            while len(self._encoded) > _REMEMBERED_CLIPS:
                self._encoded.popitem(last=False)
        return prompt
