"""`ringback hold stream --line main` read as Asterisk reads it (`mode=custom`): the real command
in a subprocess, its stdout captured and searched for each tip's audio by normalised
cross-correlation."""

from __future__ import annotations

import io
import signal
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from audio.g711 import Law, decode
from campaigns.hold_tips import Tip
from ivr.hold_rotation import RotationMode
from tests.integration.hold_cli_helpers import ACTOR, Workspace, workspace

RATE = 8000
GAP_S = 1.0
TEXTS = {"Hours": "We are open from ten to seven.",
         "Online": "Pay your invoice online.",
         "Callback": "Press one for a call back."}
START_TIMEOUT_S = 60.0  # the CLI imports numpy, scipy and the speech engine first


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    ws = workspace(tmp_path)
    ws.line(RotationMode.ORDER, gap_s=GAP_S)
    yield ws
    ws.close()


class Reader:
    """Reads the stream's stdout on a thread, noting when each byte count was reached."""

    def __init__(self, process: object, bytes_per_sample: int) -> None:
        self.process = process
        self.bytes_per_sample = bytes_per_sample
        self.data = bytearray()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stdout = self.process.stdout  # type: ignore[attr-defined]
        while True:
            chunk = stdout.read1(65536)
            if not chunk:
                return
            with self.lock:
                self.data.extend(chunk)

    def seconds(self) -> float:
        with self.lock:
            return len(self.data) / self.bytes_per_sample / RATE

    def wait_for(self, seconds: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.seconds() < seconds:
            assert time.monotonic() < deadline, f"only {self.seconds():.1f} s of audio came"
            assert self.process.poll() is None, "the stream ended"  # type: ignore[attr-defined]
            time.sleep(0.05)


def ncc_hits(audio: NDArray[np.float64], template: NDArray[np.float64],
             threshold: float = 0.9) -> list[int]:
    """Sample offsets where `template` occurs in `audio` (normalised cross-correlation)."""
    n, m = len(audio), len(template)
    if n < m:
        return []
    size = 1 << (n + m - 1).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(audio, size) * np.conj(np.fft.rfft(template, size)),
                               size)[: n - m + 1]
    energy = np.concatenate(([0.0], np.cumsum(audio * audio)))
    window = energy[m:] - energy[: n - m + 1]
    norm = np.sqrt(np.maximum(window, 0.0)) * np.linalg.norm(template)
    score = np.where(window > 1e-3 * m, correlation / np.maximum(norm, 1e-9), 0.0)
    hits: list[int] = []
    for index in np.flatnonzero(score > threshold):
        if hits and index - hits[-1] < m // 2:
            if score[index] > score[hits[-1]]:
                hits[-1] = int(index)
            continue
        hits.append(int(index))
    return hits


def occurrences(audio: NDArray[np.float64], templates: dict[int, NDArray[np.float64]]
                ) -> list[tuple[int, int]]:
    """(offset, tip id) of every tip found, in stream order."""
    return sorted((offset, tip_id) for tip_id, template in templates.items()
                  for offset in ncc_hits(audio, template))


def pcm(data: bytes) -> NDArray[np.float64]:
    return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.float64)


def assert_rotation(found: list[tuple[int, int]], order: list[int],
                    lengths: dict[int, int]) -> None:
    """The tips follow `order` round after round, each gap GAP_S long (to a frame or two)."""
    ids = [tip_id for _, tip_id in found]
    start = order.index(ids[0])
    assert ids == [order[(start + i) % len(order)] for i in range(len(ids))], ids
    for (offset, tip_id), (following, _) in pairwise(found):
        gap_s = (following - offset - lengths[tip_id]) / RATE
        assert GAP_S - 0.001 <= gap_s <= GAP_S + 0.1, gap_s


def stop_within_one_second(process: object) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    code = process.wait(timeout=5)  # type: ignore[attr-defined]
    took = time.monotonic() - started
    assert code == 0
    return took


def test_stream_follows_the_rotation_and_edits_and_stops_on_sigterm(
        ws: Workspace, tmp_path: Path) -> None:
    tips = [ws.tip(title, text) for title, text in TEXTS.items()]
    sounds = {tip.id: ws.sound(tip) for tip in tips}
    templates = {tip_id: pcm(sound.pcm16) for tip_id, sound in sounds.items()}
    lengths = {tip_id: len(sound.pcm16) // 2 for tip_id, sound in sounds.items()}
    stderr = tmp_path / "stream.err"
    process = ws.popen("hold", "stream", "--line", "main", stderr=stderr)
    try:
        reader = Reader(process, 2)
        reader.wait_for(30.0, START_TIMEOUT_S + 40)
        dropped: Tip = tips[1]
        ws.parts.tips.set_enabled(ACTOR, dropped.id, False)
        disabled_at = reader.seconds()
        first_read = time.monotonic()
        reader.wait_for(60.0, 40)
        paced_s = time.monotonic() - first_read
        took = stop_within_one_second(process)
    finally:
        process.kill()
        process.wait()
    reader.thread.join(5)

    assert took < 1.0, f"the stream took {took:.2f} s to stop"
    # Paced, not run ahead (a busy machine may only make it later: no upper bound here).
    assert paced_s >= 28.0, f"30 s of audio came in {paced_s:.1f} s: ahead of real time"
    found = occurrences(pcm(bytes(reader.data)), templates)
    cut = int(disabled_at * RATE)
    # chosen at most ~1 s before it starts, and the writer is at most 0.5 s ahead
    grace = int(2.0 * RATE)
    before = [(offset, tip_id) for offset, tip_id in found if offset < cut]
    after = [(offset, tip_id) for offset, tip_id in found if offset >= cut + grace]
    assert len(before) >= 6 and {tip_id for _, tip_id in before} == set(templates)
    assert_rotation(before, [tip.id for tip in tips], lengths)
    assert len(after) >= 4 and dropped.id not in {tip_id for _, tip_id in after}
    assert_rotation(after, [tips[0].id, tips[2].id], lengths)
    errors = stderr.read_text()
    assert "Traceback" not in errors
    counts = ws.parts.stats.totals()
    assert counts[tips[0].id].plays >= 3 and counts[dropped.id].plays >= 2


def test_ulaw_stream(ws: Workspace, tmp_path: Path) -> None:
    tips = [ws.tip(title, text) for title, text in TEXTS.items()]
    sounds = {tip.id: ws.sound(tip) for tip in tips}
    templates = {tip_id: decode(sound.ulaw, Law.ULAW).astype(np.float64)
                 for tip_id, sound in sounds.items()}
    process = ws.popen("hold", "stream", "--line", "main", "--format", "ulaw",
                       stderr=tmp_path / "stream.err")
    try:
        reader = Reader(process, 1)
        reader.wait_for(12.0, START_TIMEOUT_S + 15)
        took = stop_within_one_second(process)
    finally:
        process.kill()
        process.wait()
    reader.thread.join(5)
    assert took < 1.0
    audio = decode(bytes(reader.data), Law.ULAW).astype(np.float64)
    found = occurrences(audio, templates)
    assert [tip_id for _, tip_id in found][:3] == [tip.id for tip in tips]
    assert_rotation(found, [tip.id for tip in tips],
                    {tip_id: len(sound.ulaw) for tip_id, sound in sounds.items()})


def test_closed_pipe_ends_the_stream_quietly(ws: Workspace, tmp_path: Path) -> None:
    ws.tip("Hours", TEXTS["Hours"])
    stderr = tmp_path / "stream.err"
    process = ws.popen("hold", "stream", "--line", "main", stderr=stderr)
    stdout = process.stdout
    assert isinstance(stdout, io.BufferedReader)
    try:
        reader_data = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(reader_data) < 2 * RATE * 2:  # two seconds of audio
            assert time.monotonic() < deadline
            reader_data += stdout.read1(65536)
        stdout.close()
        closed = time.monotonic()
        code = process.wait(timeout=5)
        took = time.monotonic() - closed
    finally:
        process.kill()
        process.wait()
    assert code == 0, f"exit {code} {took:.2f} s after the pipe closed"
    errors = stderr.read_text()
    assert "Traceback" not in errors and "Exception ignored" not in errors
    assert "BrokenPipeError" not in errors


def test_unknown_line_is_refused(ws: Workspace) -> None:
    done = ws.run("hold", "stream", "--line", "nope")
    assert done.returncode == 2 and '"line-not-found"' in done.stderr and done.stdout == ""
