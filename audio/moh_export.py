"""A music-on-hold class folder for Asterisk / FreePBX (`mode=files`, `sort=alpha`).

One rotation round of tips, a gap file after each tip, every item in three files of the same
base name: `.wav` (RIFF/WAVE, PCM format 1, 16-bit, mono, 8000 Hz, canonical 44-byte header),
`.ulaw` and `.alaw` (headerless G.711, one byte per sample); Asterisk picks the format it can
play with the least translation by extension. Names sort (alphabetically) in play order:

    000-tip-12-opening-hours.wav   001-gap.wav   002-tip-7-pay-online.wav   003-gap.wav ...

Writing (`write_folder`):
- only what changed is written: a file whose content is already there is left alone (its mtime
  and inode too), so Asterisk and backups see no churn; one whose number moved (a tip added or
  removed before it) is renamed, not written again;
- files of ours that are no longer in the round are removed; any other file is never touched
  (ours: `NNN-tip-ID-SLUG.ext` and `NNN-gap.ext` with ext wav/ulaw/alaw, and our temporaries);
- each file is written to a temporary `ringback-tmp-XXXXXXXX` in the same folder (no dot: never a
  dot-file; no extension: Asterisk's `mode=files` scan skips names without a `.`, so it never
  offers a half-written file), synced, then renamed over the final name, which is atomic.

Pure parts (`slug`, `plan_items`, `item_files`, `plan_changes`) are apart from the I/O.
"""

import os
import re
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from audio.g711 import Law
from audio.raw_stream import RATE, encode_law
from audio.wav import wav_bytes

EXTENSIONS = ("wav", "ulaw", "alaw")
TEMP_PREFIX = "ringback-tmp-"
_OURS = re.compile(r"\d{3,}-(?:tip-\d+(?:-[a-z0-9]+)*|gap)\.(?:wav|ulaw|alaw)")
_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"[a-z0-9_]+")
_MAX_SLUG = 40


@dataclass(frozen=True)
class TipAudio:
    """A tip of the round: its id, its title (for the file name) and its 8 kHz s16le audio."""

    tip_id: int
    title: str
    pcm16: bytes


@dataclass(frozen=True)
class Item:
    """One entry of the folder: a base name (no extension) and its 8 kHz s16le audio."""

    stem: str
    pcm16: bytes


@dataclass(frozen=True)
class Changes:
    write: tuple[str, ...]
    rename: tuple[tuple[str, str], ...]  # (old, new): the content is there under an old name
    unchanged: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True)
class ExportReport:
    written: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)  # the new names
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def slug(title: str) -> str:
    """A file-name-safe rendering of a title: ASCII letters and digits joined by `-`, at most
    40 characters, `tip` when nothing is left (a title in Cyrillic, say)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    text = "-".join(words)[:_MAX_SLUG].strip("-")
    return text or "tip"


def is_ours(name: str) -> bool:
    """Whether a file in the folder is one we write (and so may replace or remove)."""
    return bool(_OURS.fullmatch(name) or _TEMP.fullmatch(name))


def plan_items(tips: Sequence[TipAudio], gap: bytes) -> list[Item]:
    """The folder's entries in play order: each tip followed by the gap (none when `gap` is
    empty). With no tip at all, one gap of silence keeps the class playable (an empty class is
    refused by Asterisk): `gap`, or a second of silence."""
    if not tips:
        return [Item("000-gap", gap or bytes(2 * RATE))]
    entries: list[tuple[str, bytes]] = []
    for tip in tips:
        entries.append((f"tip-{tip.tip_id}-{slug(tip.title)}", tip.pcm16))
        if gap:
            entries.append(("gap", gap))
    width = max(3, len(str(len(entries) - 1)))
    return [Item(f"{index:0{width}d}-{name}", pcm16)
            for index, (name, pcm16) in enumerate(entries)]


def item_files(item: Item) -> dict[str, bytes]:
    """The three files of an entry: name -> content."""
    return {f"{item.stem}.wav": wav_bytes(item.pcm16, RATE),
            f"{item.stem}.ulaw": encode_law(item.pcm16, Law.ULAW),
            f"{item.stem}.alaw": encode_law(item.pcm16, Law.ALAW)}


def plan_changes(wanted: Mapping[str, bytes], present: Mapping[str, bytes]) -> Changes:
    """What to write, rename, leave and remove, given the wanted files and those of ours present.

    A wanted file whose content is present under a name no longer wanted (the round got shorter
    or longer before it, so its number moved) is renamed rather than written again."""
    unchanged = sorted(name for name, data in wanted.items() if present.get(name) == data)
    missing = sorted(name for name, data in wanted.items() if present.get(name) != data)
    spare: dict[bytes, list[str]] = {}
    for name in sorted(present):
        if name not in wanted:
            spare.setdefault(present[name], []).append(name)
    write, rename = [], []
    for name in missing:
        sources = spare.get(wanted[name])
        if sources:
            rename.append((sources.pop(0), name))
        else:
            write.append(name)
    renamed_away = {old for old, _ in rename}
    remove = sorted(name for name in present if name not in wanted and name not in renamed_away)
    return Changes(tuple(write), tuple(rename), tuple(unchanged), tuple(remove))


def write_folder(directory: Path, items: Sequence[Item]) -> ExportReport:
    """Make `directory` hold exactly `items` among the files of ours (see the module)."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, bytes] = {}
    for item in items:
        wanted.update(item_files(item))
    present = {entry.name: Path(entry.path).read_bytes() for entry in os.scandir(directory)
               if entry.is_file(follow_symlinks=False) and is_ours(entry.name)}
    changes = plan_changes(wanted, present)
    for old, new in changes.rename:
        os.replace(directory / old, directory / new)
    for name in changes.write:
        _write_atomically(directory, name, wanted[name])
    for name in changes.remove:
        (directory / name).unlink(missing_ok=True)
    _sync_directory(directory)
    return ExportReport(list(changes.write), [new for _, new in changes.rename],
                        list(changes.unchanged),
                        [name for name in changes.remove if not _TEMP.fullmatch(name)])


def _write_atomically(directory: Path, name: str, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        with open(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # Asterisk runs as its own user: it must read the file
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
