"""The tips and recorded-prompts services on SQLite and PostgreSQL: edits with their history,
stale edits refused, reordering one line among tips shared with another, play counts, and
recordings only for prompts without a call's own values."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audio.prompts import PromptCache
from audio.upload import decode_upload
from audio.wav import wav_bytes
from campaigns.audio_clips import ClipPrompts
from campaigns.hold_errors import InvalidSound, NotFound, PromptHasValues, StaleEdit
from campaigns.hold_models import AudioClip, PromptRecording
from campaigns.hold_stats import HoldStats
from campaigns.hold_tips import HoldTips, Line, TipDraft
from campaigns.prompt_recordings import PromptRecordings
from ivr.catalog import FlowCatalog, FlowOptions
from ivr.hold_rotation import HoldTiming, RotationMode

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture
def tips(sessions: sessionmaker[Session]) -> HoldTips:
    service = HoldTips(sessions, clock)
    service.save_line("user:mia", Line("sales", "Sales", RotationMode.WEIGHT, HoldTiming(2, 1)))
    return service


def draft(title: str, *lines: str, **changes: object) -> TipDraft:
    fields: dict[str, object] = {"title": title, "locale": "ru", "lines": lines or ("main",),
                                 "text": f"Совет: {title}."}
    fields.update(changes)
    return TipDraft(**fields)  # type: ignore[arg-type]


def test_a_tip_keeps_the_history_of_its_edits(tips: HoldTips) -> None:
    tip = tips.create("user:mia", draft("Pay online"))
    edited = tips.update("user:olga", tip.id, draft("Pay online", weight=3,
                                                     daily_from=time(22), daily_to=time(2)),
                         tip.version)
    disabled = tips.set_enabled("user:mia", tip.id, False, edited.version)
    assert (disabled.version, disabled.enabled, disabled.updated_by) == (3, False, "user:mia")
    history = tips.history(tip.id)
    assert [(entry.actor, entry.action) for entry in history] == [
        ("user:mia", "hold_tip.disable"), ("user:olga", "hold_tip.update"),
        ("user:mia", "hold_tip.create")]
    assert history[1].changes == {"weight": [1, 3], "daily_from": [None, "22:00:00"],
                                  "daily_to": [None, "02:00:00"]}
    assert history[0].changes == {"enabled": [True, False]}


def test_an_edit_of_a_stale_copy_is_refused_and_changes_nothing(tips: HoldTips) -> None:
    tip = tips.create("user:mia", draft("Pay online"))
    tips.update("user:olga", tip.id, draft("Pay by card"), tip.version)
    with pytest.raises(StaleEdit) as refused:
        tips.update("user:mia", tip.id, draft("Pay in cash"), tip.version)
    assert "user:olga" in refused.value.message
    assert tips.tip(tip.id).title == "Pay by card"


@pytest.mark.parametrize(("changes", "says"), [
    ({"title": "  "}, "title"),
    ({"text": None}, "text to speak or a recording"),
    ({"lines": ()}, "at least one line"),
    ({"weight": 0}, "weight"),
    ({"locale": "Russian"}, "language tag"),
    ({"starts_on": date(2026, 12, 31), "ends_on": date(2026, 12, 1)}, "start"),
    ({"daily_from": time(9)}, "both"),
])
def test_a_bad_draft_is_refused_with_a_reason(tips: HoldTips, changes: dict[str, object],
                                              says: str) -> None:
    fields = {"title": "t", "locale": "ru", "lines": ("main",), "text": "x", **changes}
    with pytest.raises(InvalidSound, match=says):
        tips.create("user:mia", TipDraft(**fields))  # type: ignore[arg-type]
    assert tips.tips() == []


def test_unknown_lines_and_clips_are_not_found(tips: HoldTips) -> None:
    with pytest.raises(NotFound):
        tips.create("user:mia", draft("x", "nowhere"))
    with pytest.raises(NotFound):
        tips.create("user:mia", draft("x", clip_id="0" * 64))


def test_reordering_a_line_keeps_the_other_lines_order(tips: HoldTips) -> None:
    a = tips.create("user:mia", draft("a", "main", "sales"))
    tips.create("user:mia", draft("b", "sales"))
    c = tips.create("user:mia", draft("c", "main", "sales"))
    d = tips.create("user:mia", draft("d", "main"))
    tips.reorder("user:mia", "main", [d.id, c.id, a.id])
    assert [tip.title for tip in tips.tips("main")] == ["d", "c", "a"]
    # d took a's place (1), c kept 3, a took d's (4): on sales b (2) now comes first.
    assert [tip.title for tip in tips.tips("sales")] == ["b", "c", "a"]
    with pytest.raises(StaleEdit):  # a list that misses a tip of the line
        tips.reorder("user:mia", "main", [d.id, c.id])
    assert any(entry.action == "hold_tip.move" for entry in tips.history(d.id))


def test_concurrent_edits_of_one_version_let_exactly_one_through(tips: HoldTips) -> None:
    tip = tips.create("user:mia", draft("Pay online"))
    results: list[str] = []
    start = threading.Barrier(6)

    def edit(n: int) -> None:
        start.wait()
        try:
            tips.update(f"user:{n}", tip.id, draft(f"Edit {n}"), tip.version)
            results.append("ok")
        except StaleEdit:
            results.append("stale")

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["ok"] + ["stale"] * 5
    assert tips.tip(tip.id).version == 2


def test_plays_and_hangups_are_counted_per_tip(sessions: sessionmaker[Session],
                                               tips: HoldTips) -> None:
    a = tips.create("user:mia", draft("a"))
    b = tips.create("user:mia", draft("b"))
    stats = HoldStats(sessions, clock)
    for _ in range(3):
        stats.played(a.id, "main")
    stats.played(b.id, "sales")
    stats.hung_up_during(a.id, "main")
    totals = stats.totals()
    assert (totals[a.id].plays, totals[a.id].hangups) == (3, 1)
    assert (totals[b.id].plays, totals[b.id].hangups) == (1, 0)
    tips.delete("user:mia", b.id)
    stats.played(b.id, "sales")  # a play reported after the tip was deleted counts nowhere
    assert b.id not in stats.totals()


def tone_wav(seconds: float = 1.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return wav_bytes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())


def test_recordings_only_for_prompts_without_call_values(
    sessions: sessionmaker[Session], tmp_path: Path,
) -> None:
    catalog = FlowCatalog(FlowOptions(company="Acme", default_locale="en"))
    recordings = PromptRecordings(sessions, clock, catalog,
                                  ClipPrompts(sessions, PromptCache(tmp_path / "prompts")))
    clip = decode_upload(tone_wav(), "question.wav")
    views = {(view.text.prompt_id, view.text.locale): view for view in recordings.list()}
    assert views[("warning.balance", "ru")].text.call_values == ("balance",)
    assert views[("survey.greeting", "en")].recordable  # {company} is configuration

    with pytest.raises(PromptHasValues):
        recordings.record("user:mia", "warning.balance", "ru", clip, "balance.wav")
    with pytest.raises(NotFound):
        recordings.record("user:mia", "survey.nothing", "ru", clip, "x.wav")
    with sessions() as session:  # nothing of the refused ones was stored
        assert session.scalar(select(func.count()).select_from(AudioClip)) == 0

    recorded = recordings.record("user:mia", "survey.question", "ru", clip, "question.wav")
    assert recorded.recording is not None and recorded.recording.source_name == "question.wav"
    played = asyncio.run(recordings.for_locale("ru"))
    assert set(played) == {"survey.question"}
    assert played["survey.question"].pcm16 == clip.pcm16
    assert asyncio.run(recordings.for_locale("en")) == {}

    recordings.remove("user:mia", "survey.question", "ru")
    assert asyncio.run(recordings.for_locale("ru")) == {}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PromptRecording)) == 0
