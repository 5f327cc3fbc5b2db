"""Hold lines and their tips as marketing keeps them: create, edit, reorder, enable, schedule,
delete — each change one transaction with its audit entry (who, when, what changed), which is
the tip's history.

A tip's place in its lines' order is one global `position`: a line's order is its tips sorted
by position, and reordering a line hands its tips the positions they held, in the new order (a
tip on two lines keeps its place among the other line's tips). Edits name the version they were
made on; an edit of a tip changed since is refused (`StaleEdit`), never merged silently.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from audio.upload import Clip
from campaigns.audio_clips import ClipInfo, clip_info, store_clip
from campaigns.hold_errors import InvalidSound, NotFound, StaleEdit
from campaigns.hold_models import AudioClip, HoldLine, HoldTip, HoldTipLine, HoldTipStat
from campaigns.models import AuditEntry
from infra.db import transaction
from ivr.hold_rotation import HoldTiming, RotationMode, RotationTip, TipSchedule

LINE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
LOCALE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")
MAX_TITLE, MAX_TEXT = 200, 2000
MIN_WEIGHT, MAX_WEIGHT = 1, 100


@dataclass(frozen=True)
class TipDraft:
    """What marketing fills in for a tip. `text` is spoken in `locale` unless `clip_id` names a
    recording, which then plays instead (the text stays as its transcript)."""

    title: str
    locale: str
    lines: tuple[str, ...]
    text: str | None = None
    clip_id: str | None = None
    weight: int = 1
    starts_on: date | None = None
    ends_on: date | None = None
    daily_from: time | None = None
    daily_to: time | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Tip(TipDraft):
    id: int = 0
    position: int = 0
    render_error: str | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str = ""

    @property
    def schedule(self) -> TipSchedule:
        return TipSchedule(self.starts_on, self.ends_on, self.daily_from, self.daily_to)

    @property
    def rotation_tip(self) -> RotationTip:
        return RotationTip(self.id, self.position, self.weight, self.schedule)

    @property
    def spoken(self) -> bool:
        """Whether the caller hears the text in synthetic speech (no recording)."""
        return self.clip_id is None


@dataclass(frozen=True)
class Line:
    name: str
    title: str
    rotation: RotationMode
    timing: HoldTiming
    gap_clip_id: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str
    action: str
    changes: Mapping[str, Any]


_DRAFT_FIELDS = tuple(field.name for field in fields(TipDraft))


def checked_draft(draft: TipDraft) -> TipDraft:
    """`draft` tidied (titles and texts stripped, locale lower case, lines unique and sorted)
    or `InvalidSound` saying what is wrong."""
    title = draft.title.strip()
    text = (draft.text or "").strip() or None
    locale = draft.locale.strip().lower().replace("_", "-")
    lines = tuple(sorted(set(draft.lines)))
    if not title or len(title) > MAX_TITLE:
        raise InvalidSound(f"a tip needs a title of 1 to {MAX_TITLE} characters")
    if not LOCALE.fullmatch(locale):
        raise InvalidSound(f"{draft.locale!r} is not a language tag like ru or en-us")
    if text is None and draft.clip_id is None:
        raise InvalidSound("a tip needs a text to speak or a recording to play")
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidSound(f"the text is over {MAX_TEXT} characters")
    if not lines:
        raise InvalidSound("a tip plays on at least one line")
    if not MIN_WEIGHT <= draft.weight <= MAX_WEIGHT:
        raise InvalidSound(f"the weight is a whole number from {MIN_WEIGHT} to {MAX_WEIGHT}")
    try:
        TipSchedule(draft.starts_on, draft.ends_on, draft.daily_from, draft.daily_to)
    except ValueError as exc:
        raise InvalidSound(str(exc)) from None
    return replace(draft, title=title, text=text, locale=locale, lines=lines)


class HoldTips:
    """The tips and lines service; every method is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    # -- lines --------------------------------------------------------------------------------

    def lines(self) -> list[Line]:
        with self._sessions() as session:
            return [_line(row) for row in session.scalars(select(HoldLine).order_by(
                HoldLine.name))]

    def line(self, name: str) -> Line:
        with self._sessions() as session:
            return _line(_existing_line(session, name))

    def save_line(self, actor: str, line: Line) -> Line:
        """Create the line, or change its title, rotation and timing."""
        if not LINE_NAME.fullmatch(line.name):
            raise InvalidSound("a line's name is 1 to 64 of a-z, 0-9, - and _",
                               "invalid-line")
        if not line.title.strip():
            raise InvalidSound("a line needs a title", "invalid-line")
        with transaction(self._sessions) as session:
            if line.gap_clip_id is not None and session.get(AudioClip, line.gap_clip_id) is None:
                raise NotFound("clip", line.gap_clip_id)
            row = session.get(HoldLine, line.name)
            before = {} if row is None else _line_fields(_line(row))
            if row is None:
                row = HoldLine(name=line.name)
                session.add(row)
            row.title = line.title.strip()[:MAX_TITLE]
            row.rotation = line.rotation.value
            row.first_delay_s = line.timing.first_delay_s
            row.gap_s = line.timing.gap_s
            row.gap_clip_id = line.gap_clip_id
            row.updated_at = self._clock()
            saved = _line(row)
            _audit(session, self._clock(), actor, "hold_line.save", f"hold_line:{line.name}",
                   _changes(before, _line_fields(saved)))
            return saved

    # -- clips (recorded tips, music beds) -------------------------------------------------

    def store_clip(self, actor: str, clip: Clip, name: str) -> ClipInfo:
        """Keep an upload for tips and lines to use (the same sound twice is kept once)."""
        now = self._clock()
        with transaction(self._sessions) as session:
            info = store_clip(session, clip, name, actor, now)
            _audit(session, now, actor, "audio_clip.upload", f"audio_clip:{info.id}",
                   {"file": name, "duration_s": info.duration_s})
            return info

    def clip(self, clip_id: str) -> ClipInfo:
        with self._sessions() as session:
            return clip_info(session, clip_id)

    # -- tips ---------------------------------------------------------------------------------

    def tips(self, line: str | None = None) -> list[Tip]:
        """Every tip (or a line's), in play order."""
        with self._sessions() as session:
            query = select(HoldTip).order_by(HoldTip.position, HoldTip.id)
            if line is not None:
                _existing_line(session, line)
                query = query.join(HoldTipLine, HoldTipLine.tip_id == HoldTip.id).where(
                    HoldTipLine.line == line)
            rows = list(session.scalars(query))
            lines = _lines_of(session, [row.id for row in rows])
            return [_tip(row, lines.get(row.id, ())) for row in rows]

    def tip(self, tip_id: int) -> Tip:
        with self._sessions() as session:
            row = _existing_tip(session, tip_id)
            return _tip(row, _lines_of(session, [tip_id]).get(tip_id, ()))

    def create(self, actor: str, draft: TipDraft) -> Tip:
        draft = checked_draft(draft)
        now = self._clock()
        with transaction(self._sessions) as session:
            self._check_references(session, draft)
            last = session.scalar(select(func.max(HoldTip.position)))
            row = HoldTip(position=(last or 0) + 1, version=1, created_at=now, updated_at=now,
                          updated_by=actor)
            _fill(row, draft)
            session.add(row)
            session.flush()
            _set_lines(session, row.id, draft.lines)
            tip = _tip(row, draft.lines)
            _audit(session, now, actor, "hold_tip.create", f"hold_tip:{row.id}",
                   _changes({}, _draft_fields(tip)))
            return tip

    def update(self, actor: str, tip_id: int, draft: TipDraft, version: int) -> Tip:
        """Replace the tip's fields with `draft`, if nobody changed it since `version`."""
        draft = checked_draft(draft)
        with transaction(self._sessions) as session:
            self._check_references(session, draft)
            row, before = self._current(session, tip_id, version)
            _fill(row, draft)
            if before.text != draft.text or before.locale != draft.locale or (
                    before.clip_id != draft.clip_id):
                row.render_error = None  # the new sound is checked again
            _set_lines(session, tip_id, draft.lines)
            return self._saved(session, actor, "hold_tip.update", row, before, draft.lines)

    def set_enabled(self, actor: str, tip_id: int, enabled: bool, version: int | None = None
                    ) -> Tip:
        with transaction(self._sessions) as session:
            row, before = self._current(session, tip_id, version)
            row.enabled = enabled
            return self._saved(session, actor, "hold_tip.enable" if enabled
                               else "hold_tip.disable", row, before, before.lines)

    def reorder(self, actor: str, line: str, tip_ids: Sequence[int]) -> list[Tip]:
        """Put the line's tips in the order of `tip_ids`, which must name each of them once."""
        with transaction(self._sessions) as session:
            # The line's row first: one reorder of a line at a time (SQLite: the write lock).
            if not session.execute(update(HoldLine).where(HoldLine.name == line)
                                   .values(updated_at=self._clock())).rowcount:  # type: ignore[attr-defined]
                raise NotFound("line", line)
            rows = list(session.scalars(
                select(HoldTip).join(HoldTipLine, HoldTipLine.tip_id == HoldTip.id)
                .where(HoldTipLine.line == line).order_by(HoldTip.position, HoldTip.id)
                .with_for_update()))
            if sorted(tip_ids) != sorted(row.id for row in rows):
                raise StaleEdit(f"the new order must name every tip of line {line} once: "
                                "the list has changed, reload it")
            positions = sorted(row.position for row in rows)
            by_id = {row.id: row for row in rows}
            now = self._clock()
            for position, tip_id in zip(positions, tip_ids, strict=True):
                row = by_id[tip_id]
                if row.position != position:
                    _audit(session, now, actor, "hold_tip.move", f"hold_tip:{tip_id}",
                           {"position": [row.position, position], "line": line})
                    row.position = position
                    row.version += 1
                    row.updated_at, row.updated_by = now, actor
            session.flush()
            lines = _lines_of(session, list(by_id))
            return [_tip(by_id[tip_id], lines.get(tip_id, ())) for tip_id in tip_ids]

    def delete(self, actor: str, tip_id: int, version: int | None = None) -> None:
        with transaction(self._sessions) as session:
            row, before = self._current(session, tip_id, version)
            session.execute(delete(HoldTipLine).where(HoldTipLine.tip_id == tip_id))
            session.execute(delete(HoldTipStat).where(HoldTipStat.tip_id == tip_id))
            session.delete(row)
            _audit(session, self._clock(), actor, "hold_tip.delete", f"hold_tip:{tip_id}",
                   _changes(_draft_fields(before), {}))

    def set_render_error(self, tip_id: int, version: int, error: str | None) -> None:
        """Note why the tip's speech cannot be made (None: it can), unless it changed since."""
        with transaction(self._sessions) as session:
            row = session.get(HoldTip, tip_id)
            if row is not None and row.version == version:
                row.render_error = error[:2000] if error else None

    def history(self, tip_id: int) -> list[HistoryEntry]:
        """Every change of the tip, newest first."""
        with self._sessions() as session:
            rows = session.scalars(select(AuditEntry).where(
                AuditEntry.target == f"hold_tip:{tip_id}").order_by(AuditEntry.at.desc(),
                                                                    AuditEntry.id.desc()))
            return [HistoryEntry(row.at, row.actor, row.action, row.details or {})
                    for row in rows]

    def _current(self, session: Session, tip_id: int, version: int | None
                 ) -> tuple[HoldTip, Tip]:
        """The tip, its version already moved on by a conditional UPDATE (so the database
        decides between two edits of one version: on SQLite it takes the write lock, on
        PostgreSQL the row lock, before anything is read), and the tip as it was."""
        claim = update(HoldTip).where(HoldTip.id == tip_id)
        if version is not None:
            claim = claim.where(HoldTip.version == version)
        claimed = session.execute(claim.values(version=HoldTip.version + 1))
        row = session.get(HoldTip, tip_id, populate_existing=True)
        if row is None:
            raise NotFound("tip", tip_id)
        if not claimed.rowcount:  # type: ignore[attr-defined]
            raise StaleEdit(f"tip {tip_id} was changed by {row.updated_by} since you opened it "
                            f"(version {row.version}, yours {version}): reload it")
        before = _tip(row, _lines_of(session, [tip_id]).get(tip_id, ()))
        return row, replace(before, version=row.version - 1)

    def _saved(self, session: Session, actor: str, action: str, row: HoldTip, before: Tip,
               lines: tuple[str, ...]) -> Tip:
        now = self._clock()
        row.updated_at, row.updated_by = now, actor
        session.flush()
        after = _tip(row, lines)
        _audit(session, now, actor, action, f"hold_tip:{row.id}",
               _changes(_draft_fields(before), _draft_fields(after)))
        return after

    @staticmethod
    def _check_references(session: Session, draft: TipDraft) -> None:
        for line in draft.lines:
            _existing_line(session, line)
        if draft.clip_id is not None and session.get(AudioClip, draft.clip_id) is None:
            raise NotFound("clip", draft.clip_id)


def _existing_line(session: Session, name: str) -> HoldLine:
    row = session.get(HoldLine, name)
    if row is None:
        raise NotFound("line", name)
    return row


def _existing_tip(session: Session, tip_id: int) -> HoldTip:
    row = session.get(HoldTip, tip_id)
    if row is None:
        raise NotFound("tip", tip_id)
    return row


def _lines_of(session: Session, tip_ids: list[int]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {}
    if tip_ids:
        for tip_id, line in session.execute(
                select(HoldTipLine.tip_id, HoldTipLine.line)
                .where(HoldTipLine.tip_id.in_(tip_ids)).order_by(HoldTipLine.line)):
            found.setdefault(tip_id, []).append(line)
    return {tip_id: tuple(lines) for tip_id, lines in found.items()}


def _set_lines(session: Session, tip_id: int, lines: tuple[str, ...]) -> None:
    session.execute(delete(HoldTipLine).where(HoldTipLine.tip_id == tip_id))
    session.add_all(HoldTipLine(tip_id=tip_id, line=line) for line in lines)


def _fill(row: HoldTip, draft: TipDraft) -> None:
    for name in _DRAFT_FIELDS:
        if name != "lines":
            setattr(row, name, getattr(draft, name))


def _tip(row: HoldTip, lines: tuple[str, ...]) -> Tip:
    return Tip(title=row.title, locale=row.locale, lines=lines, text=row.text,
               clip_id=row.clip_id, weight=row.weight, starts_on=row.starts_on,
               ends_on=row.ends_on, daily_from=row.daily_from, daily_to=row.daily_to,
               enabled=row.enabled, id=row.id, position=row.position,
               render_error=row.render_error, version=row.version, created_at=row.created_at,
               updated_at=row.updated_at, updated_by=row.updated_by)


def _line(row: HoldLine) -> Line:
    return Line(row.name, row.title, RotationMode(row.rotation),
                HoldTiming(row.first_delay_s, row.gap_s), row.gap_clip_id)


def _plain(value: object) -> object:
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _draft_fields(tip: Tip) -> dict[str, object]:
    return {name: _plain(getattr(tip, name)) for name in _DRAFT_FIELDS}


def _line_fields(line: Line) -> dict[str, object]:
    return {"title": line.title, "rotation": line.rotation.value,
            "first_delay_s": line.timing.first_delay_s, "gap_s": line.timing.gap_s,
            "gap_clip_id": line.gap_clip_id}


def _changes(before: Mapping[str, object], after: Mapping[str, object]) -> dict[str, Any]:
    """field -> [old, new] for every field that differs (a missing side is None)."""
    return {name: [before.get(name), after.get(name)]
            for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)}


def _audit(session: Session, now: datetime, actor: str, action: str, target: str,
           changes: Mapping[str, Any]) -> None:
    session.add(AuditEntry(at=now, actor=actor, action=action, target=target,
                           details=dict(changes)))
