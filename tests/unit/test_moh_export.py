"""The pure parts of the music-on-hold export and stream: names, slugs, which files change,
gaps, pacing; and the folder writer on a temp folder."""

import os
from pathlib import Path

import pytest

from audio.moh_export import (
    TEMP_PREFIX,
    Item,
    TipAudio,
    is_ours,
    item_files,
    plan_changes,
    plan_items,
    slug,
    write_folder,
)
from audio.raw_stream import (
    FRAME_BYTES,
    Pacer,
    StreamFormat,
    encode,
    frames,
    gap_pcm16,
    silence_pcm16,
)

TONE = b"\x10\x00\xf0\xff" * 400  # 800 samples


@pytest.mark.parametrize(("title", "expected"), [
    ("Opening hours", "opening-hours"),
    ("  Pay ONLINE!  now ", "pay-online-now"),
    ("Café déjà vu", "cafe-deja-vu"),
    ("Спасибо за ожидание", "tip"),
    ("", "tip"),
    ("a" * 80, "a" * 40),
    ("x" * 39 + " yz", "x" * 39),
])
def test_slug(title: str, expected: str) -> None:
    assert slug(title) == expected


def test_items_sort_in_play_order_with_a_gap_after_each_tip() -> None:
    tips = [TipAudio(12, "Zeta", TONE), TipAudio(3, "Alpha", TONE), TipAudio(7, "Mid", TONE)]
    items = plan_items(tips, b"\x00\x00" * 10)
    assert [item.stem for item in items] == [
        "000-tip-12-zeta", "001-gap", "002-tip-3-alpha", "003-gap", "004-tip-7-mid", "005-gap"]
    assert sorted(item.stem for item in items) == [item.stem for item in items]
    assert all(is_ours(f"{item.stem}.{ext}") for item in items for ext in ("wav", "ulaw", "alaw"))


def test_no_gap_files_without_a_gap_and_a_silent_entry_without_tips() -> None:
    assert [item.stem for item in plan_items([TipAudio(1, "A", TONE)], b"")] == ["000-tip-1-a"]
    (only,) = plan_items([], b"")
    assert only.stem == "000-gap" and only.pcm16 == bytes(16000)


def test_numbers_widen_so_that_long_rounds_still_sort() -> None:
    items = plan_items([TipAudio(i, f"t{i}", TONE) for i in range(600)], b"\x00\x00")
    stems = [item.stem for item in items]
    assert stems[0] == "0000-tip-0-t0" and sorted(stems) == stems


@pytest.mark.parametrize(("name", "ours"), [
    ("000-gap.wav", True), ("001-tip-4-hello.ulaw", True), ("0012-tip-4.alaw", True),
    (f"{TEMP_PREFIX}ab_c9x", True), ("000-gap.mp3", False), ("vendor.wav", False),
    (".000-gap.wav", False), ("000-gap.wav.bak", False), ("tip-4-hello.wav", False),
])
def test_which_files_are_ours(name: str, ours: bool) -> None:
    assert is_ours(name) is ours


def test_item_files_hold_a_canonical_wav_and_both_laws() -> None:
    files = item_files(Item("000-gap", TONE))
    assert sorted(files) == ["000-gap.alaw", "000-gap.ulaw", "000-gap.wav"]
    assert files["000-gap.wav"][:4] == b"RIFF" and files["000-gap.wav"][44:] == TONE
    assert len(files["000-gap.ulaw"]) == len(files["000-gap.alaw"]) == len(TONE) // 2


def test_plan_changes_writes_renames_keeps_and_removes() -> None:
    present = {"000-tip-1-a.wav": b"A", "001-gap.wav": b"G", "002-tip-2-b.wav": b"B",
               "003-gap.wav": b"G", "004-tip-3-c.wav": b"C", "005-gap.wav": b"G"}
    wanted = {"000-tip-2-b.wav": b"B", "001-gap.wav": b"G", "002-tip-3-c.wav": b"C2",
              "003-gap.wav": b"G", "004-tip-4-d.wav": b"D", "005-gap.wav": b"G"}
    changes = plan_changes(wanted, present)
    assert changes.unchanged == ("001-gap.wav", "003-gap.wav", "005-gap.wav")
    assert changes.rename == (("002-tip-2-b.wav", "000-tip-2-b.wav"),)
    assert changes.write == ("002-tip-3-c.wav", "004-tip-4-d.wav")
    assert changes.remove == ("000-tip-1-a.wav", "004-tip-3-c.wav")


def test_write_folder_leaves_foreign_and_unchanged_files_alone(tmp_path: Path) -> None:
    folder = tmp_path / "moh"
    folder.mkdir()
    (folder / "foreign.wav").write_bytes(b"x")
    (folder / f"{TEMP_PREFIX}leftover").write_bytes(b"half")  # a crashed run's temporary
    first = write_folder(folder, plan_items([TipAudio(1, "A", TONE)], bytes(4)))
    assert len(first.written) == 6 and first.removed == []
    assert sorted(os.listdir(folder)) == ["000-tip-1-a.alaw", "000-tip-1-a.ulaw",
                                          "000-tip-1-a.wav", "001-gap.alaw", "001-gap.ulaw",
                                          "001-gap.wav", "foreign.wav"]
    assert oct((folder / "000-tip-1-a.wav").stat().st_mode & 0o777) == oct(0o644)
    stat = (folder / "000-tip-1-a.wav").stat()
    second = write_folder(folder, plan_items([TipAudio(1, "A", TONE)], b""))
    assert second.written == [] and len(second.unchanged) == 3
    assert second.removed == ["001-gap.alaw", "001-gap.ulaw", "001-gap.wav"]
    again = (folder / "000-tip-1-a.wav").stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert (folder / "foreign.wav").read_bytes() == b"x"


def test_gap_is_the_bed_cut_or_padded_to_length() -> None:
    assert gap_pcm16(None, 0.5) == bytes(8000)
    assert gap_pcm16(TONE, 0.05) == TONE[:800]
    padded = gap_pcm16(TONE, 0.25)
    assert padded[: len(TONE)] == TONE and padded[len(TONE):] == bytes(4000 - len(TONE))
    assert silence_pcm16(0.02) == bytes(FRAME_BYTES)


def test_frames_are_whole_and_padded() -> None:
    chunks = list(frames(TONE))  # 1600 bytes -> 5 frames of 320
    assert [len(chunk) for chunk in chunks] == [FRAME_BYTES] * 5
    assert b"".join(chunks) == TONE
    tail = list(frames(TONE[:100]))
    assert tail == [TONE[:100] + bytes(FRAME_BYTES - 100)]


def test_encode_slin_is_the_samples_and_ulaw_one_byte_each() -> None:
    assert encode(TONE, StreamFormat.SLIN) == TONE
    assert len(encode(TONE, StreamFormat.ULAW)) == len(TONE) // 2
    assert encode(bytes(320), StreamFormat.ULAW) == b"\xff" * 160
    with pytest.raises(ValueError):
        encode(b"\x00", StreamFormat.SLIN)


def test_pacer_keeps_a_small_lead_and_never_bursts() -> None:
    pacer = Pacer(lead_s=0.2, max_lead_s=0.5)
    written = 0
    while pacer.wait_s(100.0) == 0:  # at the start: write up to the lead at once
        pacer.wrote(0.02)
        written += 1
    assert written == 11  # 0.22 s: the frame that crosses the lead is the last one
    assert pacer.wait_s(100.0) == pytest.approx(0.02)
    assert pacer.wait_s(100.05) == 0.0
    assert pacer.ahead_s(100.05) <= 0.5
    pacer.wrote(0.02)
    assert pacer.wait_s(130.0) == 0.0  # the reader stalled for half a minute: re-based
    pacer.wrote(0.25)
    assert pacer.ahead_s(130.0) == pytest.approx(0.25)
    assert pacer.wait_s(130.0) == pytest.approx(0.05)
