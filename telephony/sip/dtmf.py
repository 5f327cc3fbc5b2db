"""DTMF, sans-IO: RFC 4733 telephone-events both ways, and in-band dual tones both ways.

Nothing here raises on what a peer sends: a payload we cannot read is `None`, an event code
outside the sixteen DTMF keys (16 and up: other tones) is read but yields no digit.
"""

import struct
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from telephony.sip.codecs import PTIME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME

DIGITS = "0123456789*#ABCD"  # RFC 4733 event codes 0..15
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")  # KEYPAD[row][column]

DEFAULT_DURATION_MS = 100
DEFAULT_VOLUME = 10  # -10 dBm0, as RFC 4733 senders usually say
END_RETRANSMISSIONS = 3
MAX_EVENT_DURATION = 0xFFFF  # the 16-bit duration field, in timestamp units

_EVENT = struct.Struct("!BBH")


def validate_digit(digit: str) -> str:
    """The digit in upper case; ValueError unless it is one of 0-9 * # A-D."""
    upper = digit.upper()
    if len(upper) != 1 or upper not in DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return upper


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event payload (section 2.3)."""

    code: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return DIGITS[self.code] if self.code < len(DIGITS) else None


def parse_event(payload: bytes) -> TelephoneEvent | None:
    """The first event of a telephone-event payload; None when it is shorter than 4 bytes."""
    if len(payload) < _EVENT.size:
        return None
    code, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(code=code, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def build_event(code: int, *, end: bool, duration: int, volume: int = DEFAULT_VOLUME) -> bytes:
    flags = (0x80 if end else 0) | (volume & 0x3F)
    return _EVENT.pack(code, flags, min(duration, MAX_EVENT_DURATION))


class EventReceiver:
    """Turns telephone-event packets into digits, one per event.

    An event is known by its RTP timestamp: every packet of one key press (updates, the end
    packet and its retransmissions) carries the same one. The digit is reported on the first
    packet seen, so barge-in does not wait for the key to be released. Only the last `memory`
    timestamps are remembered, whatever the peer sends.
    """

    def __init__(self, memory: int = 8) -> None:
        self._recent: deque[int] = deque(maxlen=memory)

    def feed(self, timestamp: int, event: TelephoneEvent) -> str | None:
        """The digit when this packet starts a new event, else None."""
        if timestamp in self._recent:
            return None
        self._recent.append(timestamp)
        return event.digit

    def reset(self) -> None:
        self._recent.clear()

    def __len__(self) -> int:
        return len(self._recent)


@dataclass(frozen=True)
class EventSender:
    """The telephone-event payloads for one digit, one per 20 ms, in sending order.

    All of them go out with the same RTP timestamp (the media clock when the first is sent), the
    first with the marker bit. The duration grows by one frame per packet; the last value goes
    out three times with the end bit.
    """

    digit: str
    duration_ms: int = DEFAULT_DURATION_MS
    volume: int = DEFAULT_VOLUME

    def payloads(self) -> list[bytes]:
        code = DIGITS.index(validate_digit(self.digit))
        frames = _frame_count(self.duration_ms)
        updates = [
            build_event(code, end=False, duration=n * SAMPLES_PER_FRAME, volume=self.volume)
            for n in range(1, frames)
        ]
        end = build_event(code, end=True, duration=frames * SAMPLES_PER_FRAME, volume=self.volume)
        return updates + [end] * END_RETRANSMISSIONS


def _frame_count(duration_ms: int) -> int:
    if duration_ms <= 0:
        raise ValueError(f"a digit lasts a positive time, not {duration_ms} ms")
    frames = -(-duration_ms // PTIME_MS)
    return min(frames, MAX_EVENT_DURATION // SAMPLES_PER_FRAME)


def tone_frequencies(digit: str) -> tuple[float, float]:
    """The (row, column) frequencies of a digit, in Hz."""
    key = validate_digit(digit)
    row = next(r for r, keys in enumerate(KEYPAD) if key in keys)
    return ROW_HZ[row], COLUMN_HZ[KEYPAD[row].index(key)]


def dual_tone(
    digit: str, duration_ms: int = DEFAULT_DURATION_MS, dbfs: float = -10.0
) -> NDArray[np.int16]:
    """The in-band tone of a digit in whole 20 ms frames, each of its two tones at `dbfs`."""
    low, high = tone_frequencies(digit)
    t = np.arange(_frame_count(duration_ms) * SAMPLES_PER_FRAME) / SAMPLE_RATE
    amplitude = 32767 * 10 ** (dbfs / 20)
    wave = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)
    return np.round(amplitude * wave).astype(np.int16)


def _basis() -> NDArray[np.float64]:
    """Cosine and sine at the eight DTMF frequencies over one block: columns 0-7 and 8-15."""
    n = np.arange(SAMPLES_PER_FRAME)[:, None]
    omega = 2 * np.pi * np.array(ROW_HZ + COLUMN_HZ)[None, :] / SAMPLE_RATE
    return np.hstack([np.cos(omega * n), np.sin(omega * n)])


@dataclass(frozen=True)
class DetectorLimits:
    """The checks a 20 ms block must pass to hold a digit (levels in dBFS, ratios in dB)."""

    min_tone_dbfs: float = -36.0  # each of the two tones, as a sine's peak level
    dominance_db: float = 6.0  # the strongest row (column) over every other row (column)
    normal_twist_db: float = 8.0  # the column tone louder than the row tone
    reverse_twist_db: float = 4.0  # the row tone louder than the column tone
    min_share: float = 0.6  # of the block's energy in the two tones (speech and noise spread)
    min_blocks: int = 2  # consecutive blocks: 40 ms


def _power_ratio(db: float) -> float:
    return float(10 ** (db / 10))


class InbandDetector:
    """DTMF in decoded 8 kHz audio, in 160-sample (20 ms) blocks.

    Each block is projected onto the eight DTMF frequencies: the single-bin DFT that the
    Goertzel algorithm computes, done as one matrix product. A block holds a digit when both
    tones are loud enough, each dominates its group, the twist is within limits and the two
    tones carry most of the block's energy. A digit is reported once it has held for
    `min_blocks` consecutive blocks, and again only after a block without it. The state is a
    partial block and two small counters.
    """

    _BASIS = _basis()

    def __init__(self, limits: DetectorLimits | None = None) -> None:
        self.limits = limits or DetectorLimits()
        peak = 32767 * 10 ** (self.limits.min_tone_dbfs / 20)
        self._min_tone_energy = peak**2 / 2 * SAMPLES_PER_FRAME
        self._dominance = _power_ratio(self.limits.dominance_db)
        self._normal_twist = _power_ratio(self.limits.normal_twist_db)
        self._reverse_twist = _power_ratio(self.limits.reverse_twist_db)
        self._pending: NDArray[np.float64] = np.zeros(0)
        self._candidate: str | None = None
        self._run = 0

    @property
    def pending_samples(self) -> int:
        return len(self._pending)

    def feed(self, samples: NDArray[np.int16]) -> list[str]:
        """Digits that became certain in these samples (usually none)."""
        data = np.concatenate([self._pending, samples.astype(np.float64)])
        whole = len(data) - len(data) % SAMPLES_PER_FRAME
        self._pending = data[whole:]
        blocks = data[:whole].reshape(-1, SAMPLES_PER_FRAME)
        found = (self._step(self._block_digit(block)) for block in blocks)
        return [digit for digit in found if digit is not None]

    def _step(self, digit: str | None) -> str | None:
        if digit == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run = digit, 1
        return digit if self._run == self.limits.min_blocks else None

    def _block_digit(self, block: NDArray[np.float64]) -> str | None:
        energy = float(block @ block)
        if energy < 2 * self._min_tone_energy:
            return None
        projection = block @ self._BASIS
        tones = (projection[:8] ** 2 + projection[8:] ** 2) * (2 / SAMPLES_PER_FRAME)
        rows, columns = tones[:4].tolist(), tones[4:].tolist()
        row, column = max(rows), max(columns)
        if not self._plausible(row, column, energy):
            return None
        if not (
            _dominates(row, rows, self._dominance) and _dominates(column, columns, self._dominance)
        ):
            return None
        return KEYPAD[rows.index(row)][columns.index(column)]

    def _plausible(self, row: float, column: float, energy: float) -> bool:
        return (
            min(row, column) >= self._min_tone_energy
            and column <= row * self._normal_twist
            and row <= column * self._reverse_twist
            and row + column >= self.limits.min_share * energy
        )


def _dominates(best: float, group: list[float], ratio: float) -> bool:
    return sum(1 for power in group if power * ratio > best) == 1
