"""`ringback hold export DIR --line main`, run as the operator runs it, and the folder checked
against what Asterisk's `mode=files` music on hold requires of it."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaigns.hold_tips import TipDraft
from infra.db import utcnow
from ivr.hold_rotation import RotationMode, cycle_order
from tests.integration.hold_cli_helpers import ACTOR, Workspace, workspace

TEXTS = {"Opening hours": "We are open from ten to seven, Monday to Friday.",
         "Pay online": "You can pay your invoice online at any time.",
         "Callback": "Press one and we will call you back."}


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    ws = workspace(tmp_path)
    yield ws
    ws.close()


def check_wav(data: bytes) -> int:
    """What Asterisk's wav format module (format_wav.c) accepts, checked from the bytes: RIFF /
    WAVE, a 16-byte PCM fmt chunk (format 1), mono, 8000 Hz, 16 bits, then the data chunk
    holding the rest of the file, of even length. Returns the number of samples."""
    riff, riff_size, wave = struct.unpack("<4sI4s", data[:12])
    assert (riff, wave) == (b"RIFF", b"WAVE")
    assert riff_size == len(data) - 8
    fmt_id, fmt_size = struct.unpack("<4sI", data[12:20])
    assert (fmt_id, fmt_size) == (b"fmt ", 16)
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (tag, channels, rate, bits) == (1, 1, 8000, 16)
    assert (byte_rate, block_align) == (16000, 2)
    data_id, data_size = struct.unpack("<4sI", data[36:44])
    assert data_id == b"data"
    assert data_size == len(data) - 44 and data_size % 2 == 0 and data_size > 0
    return int(data_size) // 2


def export(ws: Workspace, folder: Path) -> dict[str, object]:
    done = ws.run("hold", "export", str(folder), "--line", "main")
    assert done.returncode == 0, done.stderr
    assert "[ringback-main]\nmode=files\n" in done.stdout
    assert f"directory={folder.absolute()}\n" in done.stdout
    assert "sort=alpha" in done.stdout
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def stems(folder: Path) -> list[str]:
    """The folder's entries in Asterisk's sort=alpha order, one per base name."""
    return sorted({name.rsplit(".", 1)[0] for name in os.listdir(folder)})


def tip_ids(folder: Path) -> list[int]:
    return [int(stem.split("-")[2]) for stem in stems(folder) if "-tip-" in stem]


def test_folder_is_what_asterisk_plays_in_rotation_order(ws: Workspace, tmp_path: Path) -> None:
    ws.line(RotationMode.ORDER, gap_s=0.5)
    tips = [ws.tip(title, text) for title, text in TEXTS.items()]
    ws.parts.tips.reorder(ACTOR, "main", [tips[2].id, tips[0].id, tips[1].id])
    folder = tmp_path / "moh"

    summary = export(ws, folder)

    expected = [tips[2].id, tips[0].id, tips[1].id]
    assert summary["tips"] == expected and summary["written"] == 18
    assert tip_ids(folder) == expected
    entries = stems(folder)
    assert [stem.split("-", 1)[1].split("-")[0] for stem in entries] == ["tip", "gap"] * 3
    assert entries[0] == f"000-tip-{tips[2].id}-callback"
    names = os.listdir(folder)
    assert not [name for name in names if name.startswith(".")]
    assert len(names) == 18 and {name.rsplit(".", 1)[1] for name in names} == {
        "wav", "ulaw", "alaw"}
    by_id = {tip.id: tip for tip in tips}
    for stem in entries:
        wav = (folder / f"{stem}.wav").read_bytes()
        samples = check_wav(wav)
        assert len((folder / f"{stem}.ulaw").read_bytes()) == samples
        assert len((folder / f"{stem}.alaw").read_bytes()) == samples
        if "-gap" in stem:
            assert samples == 4000 and wav[44:] == bytes(8000)  # 0.5 s of silence
        else:
            sound = ws.sound(by_id[int(stem.split("-")[2])])
            assert wav[44:] == sound.pcm16
            assert (folder / f"{stem}.ulaw").read_bytes() == sound.ulaw
            assert (folder / f"{stem}.alaw").read_bytes() == sound.alaw


def test_weight_rotation_exports_one_deterministic_round(ws: Workspace, tmp_path: Path) -> None:
    ws.line(RotationMode.WEIGHT, gap_s=0.0)
    for weight, (title, text) in zip((1, 50, 10), TEXTS.items(), strict=True):
        ws.tip(title, text, weight=weight)
    folder = tmp_path / "moh"

    summary = export(ws, folder)

    local = utcnow().astimezone(ZoneInfo("Europe/Moscow"))
    rotation = [tip.rotation_tip for tip in ws.parts.tips.tips("main")]
    assert summary["tips"] == cycle_order(rotation, RotationMode.WEIGHT, local, 0)
    assert tip_ids(folder) == summary["tips"]
    assert not [stem for stem in stems(folder) if "gap" in stem]  # gap_s 0: no gap files
    again = export(ws, folder)
    assert again["tips"] == summary["tips"]
    assert (again["written"], again["unchanged"], again["removed"]) == (0, 9, 0)
    assert again["changed"] is False and summary["changed"] is True


def test_reexport_rewrites_only_the_edited_tip(ws: Workspace, tmp_path: Path) -> None:
    ws.line(RotationMode.ORDER, gap_s=0.5)
    tips = [ws.tip(title, text) for title, text in TEXTS.items()]
    folder = tmp_path / "moh"
    export(ws, folder)
    before = {name: os.stat(folder / name) for name in os.listdir(folder)}
    time.sleep(0.05)

    edited = tips[1]
    ws.parts.tips.update(ACTOR, edited.id, TipDraft(
        title=edited.title, locale="en", lines=("main",),
        text="You can pay your invoice online, day and night."), edited.version)
    summary = export(ws, folder)

    assert (summary["written"], summary["unchanged"], summary["removed"]) == (3, 15, 0)
    after = {name: os.stat(folder / name) for name in os.listdir(folder)}
    assert after.keys() == before.keys()
    changed = {name for name in after
               if (after[name].st_ino, after[name].st_mtime_ns)
               != (before[name].st_ino, before[name].st_mtime_ns)}
    assert changed == {f"002-tip-{edited.id}-pay-online.{ext}" for ext in ("wav", "ulaw", "alaw")}


def test_tips_out_of_schedule_or_removed_leave_the_folder(ws: Workspace,
                                                          tmp_path: Path) -> None:
    ws.line(RotationMode.ORDER, gap_s=0.5)
    tips = [ws.tip(title, text) for title, text in TEXTS.items()]
    later = utcnow().astimezone(ZoneInfo("Europe/Moscow")).date() + timedelta(days=10)
    future = ws.tip("New year", "Happy new year from all of us.", starts_on=later)
    disabled = ws.tip("Old promo", "This promotion has ended.", enabled=False)
    folder = tmp_path / "moh"
    folder.mkdir()
    (folder / "vendor-music.wav").write_bytes(b"not ours")
    (folder / ".keep").write_bytes(b"")

    export(ws, folder)
    assert tip_ids(folder) == [tip.id for tip in tips]
    assert future.id not in tip_ids(folder) and disabled.id not in tip_ids(folder)

    ws.parts.tips.delete(ACTOR, tips[0].id)
    summary = export(ws, folder)

    assert tip_ids(folder) == [tips[1].id, tips[2].id]
    # the tip's 3 files and one gap's go; the others moved up a place: renamed, not rewritten
    assert (summary["removed"], summary["renamed"], summary["written"]) == (6, 6, 0)
    assert not [name for name in os.listdir(folder) if f"-tip-{tips[0].id}-" in name]
    assert (folder / "vendor-music.wav").read_bytes() == b"not ours"
    assert (folder / ".keep").exists()


def test_a_folder_that_cannot_be_written_is_a_clear_error(ws: Workspace, tmp_path: Path) -> None:
    ws.line()
    ws.tip("Hours", "We are open from ten to seven.")
    a_file = tmp_path / "moh.wav"
    a_file.write_bytes(b"a file, not a folder")
    for target, message in ((a_file, "is a file, not a folder"),
                            (Path("/proc/ringback-moh"), "No such file or directory")):
        done = ws.run("hold", "export", str(target), "--line", "main")
        assert done.returncode == 2 and done.stdout == ""
        error = json.loads(done.stderr.strip().splitlines()[-1])["error"]
        assert error["code"] == "export-failed" and message in error["message"]
    assert a_file.read_bytes() == b"a file, not a folder"
