"""What callers hear, as marketing set it up: uploaded audio, recorded voices for the robot's
prompts, hold lines and their tips, and how often each tip was played.

Audio is kept in the database (8 kHz mono 16-bit PCM, already loudness-normalised), so every
instance on one PostgreSQL plays the same sound; the prompt cache on disk is made from it.
"""

from datetime import date, datetime, time

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Time,
)
from sqlalchemy.orm import Mapped, mapped_column

from infra.db import Base, UtcDateTime, utcnow


class AudioClip(Base):
    """An upload after conversion; its id is the SHA-256 of `pcm16`, so one sound is kept once."""

    __tablename__ = "audio_clips"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pcm16: Mapped[bytes] = mapped_column(LargeBinary)  # 8000 Hz mono s16le, normalised
    duration_s: Mapped[float] = mapped_column(Float)
    source_name: Mapped[str] = mapped_column(String(200))  # the uploaded file's name
    source_format: Mapped[str] = mapped_column(String(100))  # "WAV FLOAT, 48000 Hz, 2 ch"
    loudness_lufs: Mapped[float | None] = mapped_column(Float)  # of the upload, before
    gain_db: Mapped[float] = mapped_column(Float)  # what normalisation applied
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class PromptRecording(Base):
    """A robot prompt spoken by a person: the clip played instead of the prompt's speech."""

    __tablename__ = "prompt_recordings"

    prompt_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    locale: Mapped[str] = mapped_column(String(16), primary_key=True)
    clip_id: Mapped[str] = mapped_column(ForeignKey("audio_clips.id"))
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class HoldLine(Base):
    """A waiting line (a queue) with its own tips and how they are played."""

    __tablename__ = "hold_lines"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    rotation: Mapped[str] = mapped_column(String(16), default="order")  # RotationMode
    first_delay_s: Mapped[float] = mapped_column(Float, default=5.0)
    gap_s: Mapped[float] = mapped_column(Float, default=3.0)
    gap_clip_id: Mapped[str | None] = mapped_column(ForeignKey("audio_clips.id"))  # music bed
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class HoldTip(Base):
    """One tip: its text (spoken in its locale) or a recording, when it plays, in which order.

    `version` grows with every change, so an edit made on a stale copy is refused (409)."""

    __tablename__ = "hold_tips"
    __table_args__ = (Index("ix_hold_tips_position", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    clip_id: Mapped[str | None] = mapped_column(ForeignKey("audio_clips.id"))
    position: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    daily_from: Mapped[time | None] = mapped_column(Time)
    daily_to: Mapped[time | None] = mapped_column(Time)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    render_error: Mapped[str | None] = mapped_column(Text)  # why its speech cannot be made
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class HoldTipLine(Base):
    """Which lines a tip plays on."""

    __tablename__ = "hold_tip_lines"

    tip_id: Mapped[int] = mapped_column(ForeignKey("hold_tips.id"), primary_key=True)
    line: Mapped[str] = mapped_column(ForeignKey("hold_lines.name"), primary_key=True)


class HoldTipStat(Base):
    """Plays of a tip on a line per day (in UTC), and callers who hung up during it."""

    __tablename__ = "hold_tip_stats"

    tip_id: Mapped[int] = mapped_column(ForeignKey("hold_tips.id"), primary_key=True)
    line: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    plays: Mapped[int] = mapped_column(Integer, default=0)
    hangups: Mapped[int] = mapped_column(Integer, default=0)
