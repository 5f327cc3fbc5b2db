import numpy as np
import pytest
from numpy.typing import NDArray

from audio.g711 import Law, decode, encode
from telephony.sip.dtmf import (
    DIGITS,
    DetectorLimits,
    EventReceiver,
    EventSender,
    InbandDetector,
    TelephoneEvent,
    build_event,
    dual_tone,
    parse_event,
    tone_frequencies,
    validate_digit,
)

RATE = 8000


def through_g711(pcm: NDArray[np.int16], law: Law) -> NDArray[np.int16]:
    return decode(encode(pcm, law), law)


def detect(
    pcm: NDArray[np.int16], chunk: int = 160, detector: InbandDetector | None = None
) -> list[str]:
    detector = detector or InbandDetector()
    found: list[str] = []
    for start in range(0, len(pcm), chunk):
        found += detector.feed(pcm[start : start + chunk])
    return found


def silence_ms(ms: int) -> NDArray[np.int16]:
    return np.zeros(ms * RATE // 1000, dtype=np.int16)


def to_int16(signal: NDArray[np.float64], peak: float) -> NDArray[np.int16]:
    scaled: NDArray[np.float64] = signal / np.abs(signal).max() * peak
    return np.round(scaled).astype(np.int16)


# -- RFC 4733 payloads ---------------------------------------------------------------------------


def test_event_payload_round_trips() -> None:
    payload = build_event(11, end=True, duration=800, volume=10)
    assert payload == bytes([11, 0x8A, 0x03, 0x20])
    assert parse_event(payload) == TelephoneEvent(code=11, end=True, volume=10, duration=800)


def test_event_codes_map_to_keys() -> None:
    digits = [TelephoneEvent(code, False, 10, 160).digit for code in range(16)]
    assert "".join(d or "" for d in digits) == "0123456789*#ABCD"


@pytest.mark.parametrize("code", [16, 20, 63, 255])
def test_codes_beyond_the_keypad_have_no_digit(code: int) -> None:
    event = parse_event(bytes([code, 0x0A, 0, 160]))
    assert event is not None
    assert event.digit is None


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x0a\x00"])
def test_short_payloads_are_none(payload: bytes) -> None:
    assert parse_event(payload) is None


def test_reserved_bit_is_ignored_and_extra_bytes_tolerated() -> None:
    event = parse_event(bytes([5, 0x40 | 0x0A, 0, 160]) + b"\x00\x00\x00\x00")
    assert event == TelephoneEvent(code=5, end=False, volume=10, duration=160)


@pytest.mark.parametrize("digit", ["", "E", "55", "x", "#*"])
def test_invalid_digits_raise(digit: str) -> None:
    with pytest.raises(ValueError):
        validate_digit(digit)


def test_lower_case_letters_are_keys() -> None:
    assert validate_digit("a") == "A"


# -- EventReceiver -------------------------------------------------------------------------------


def key_press(
    receiver: EventReceiver, code: int, timestamp: int, updates: int = 4, ends: int = 3
) -> list[str]:
    events = [TelephoneEvent(code, False, 10, 160 * (n + 1)) for n in range(updates)]
    events += [TelephoneEvent(code, True, 10, 160 * (updates + 1))] * ends
    digits = (receiver.feed(timestamp, event) for event in events)
    return [d for d in digits if d is not None]


def test_one_digit_per_event_despite_updates_and_end_retransmissions() -> None:
    assert key_press(EventReceiver(), 5, timestamp=1000) == ["5"]


def test_the_digit_comes_with_the_first_packet() -> None:
    receiver = EventReceiver()
    assert receiver.feed(42, TelephoneEvent(9, False, 10, 160)) == "9"


def test_same_key_twice_is_two_digits() -> None:
    receiver = EventReceiver()
    assert key_press(receiver, 1, 1000) + key_press(receiver, 1, 2120) == ["1", "1"]


def test_first_packets_lost_end_only_still_counts_once() -> None:
    assert key_press(EventReceiver(), 11, 5000, updates=0) == ["#"]


def test_unknown_codes_yield_nothing() -> None:
    assert key_press(EventReceiver(), 20, 1000) == []


def test_receiver_memory_is_bounded() -> None:
    receiver = EventReceiver(memory=8)
    for n in range(1000):
        receiver.feed((n * 2**31 + n) % 2**32, TelephoneEvent(n % 16, False, 10, 160))
    assert len(receiver) == 8


# -- EventSender ---------------------------------------------------------------------------------


def test_a_100_ms_digit_is_five_frames_then_two_end_retransmissions() -> None:
    events = [parse_event(p) for p in EventSender("#").payloads()]
    assert all(e is not None and e.code == 11 and e.volume == 10 for e in events)
    assert [(e.duration, e.end) for e in events if e] == [
        (160, False),
        (320, False),
        (480, False),
        (640, False),
        (800, True),
        (800, True),
        (800, True),
    ]


def test_a_20_ms_digit_is_only_end_packets() -> None:
    events = [parse_event(p) for p in EventSender("D", duration_ms=20).payloads()]
    assert [(e.code, e.duration, e.end) for e in events if e] == [(15, 160, True)] * 3


def test_duration_stays_within_the_16_bit_field() -> None:
    last = parse_event(EventSender("0", duration_ms=60_000).payloads()[-1])
    assert last is not None
    assert last.duration <= 0xFFFF


def test_sender_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        EventSender("x").payloads()
    with pytest.raises(ValueError):
        EventSender("1", duration_ms=0).payloads()


# -- in-band -------------------------------------------------------------------------------------


def test_dual_tone_holds_the_two_frequencies() -> None:
    tone = dual_tone("9", 100).astype(np.float64)
    assert len(tone) == 800
    spectrum = np.abs(np.fft.rfft(tone))
    peaks = sorted(np.argsort(spectrum)[-2:] * RATE / len(tone))
    assert peaks == pytest.approx(tone_frequencies("9"), abs=10)


@pytest.mark.parametrize("law", list(Law))
@pytest.mark.parametrize("digit", list(DIGITS))
def test_every_digit_in_both_laws(law: Law, digit: str) -> None:
    pcm = np.concatenate([silence_ms(40), dual_tone(digit, 100), silence_ms(60)])
    assert detect(through_g711(pcm, law)) == [digit]


@pytest.mark.parametrize("law", list(Law))
def test_a_quiet_digit_is_heard(law: Law) -> None:
    assert detect(through_g711(dual_tone("0", 80, dbfs=-30), law)) == ["0"]


def test_a_sequence_with_repeats_and_any_chunk_size() -> None:
    gap = silence_ms(60)
    pcm = np.concatenate([np.concatenate([dual_tone(d, 100), gap]) for d in "11#5"])
    assert detect(pcm, chunk=160) == list("11#5")
    assert detect(pcm, chunk=80) == list("11#5")
    assert detect(pcm, chunk=333) == list("11#5")


def test_a_long_tone_is_one_digit() -> None:
    assert detect(dual_tone("7", 2000)) == ["7"]


def test_a_tone_shorter_than_two_blocks_is_not_a_digit() -> None:
    assert detect(np.concatenate([dual_tone("3", 20), silence_ms(100)])) == []


def test_a_different_digit_right_after_is_reported() -> None:
    assert detect(np.concatenate([dual_tone("4", 60), dual_tone("6", 60)])) == ["4", "6"]


@pytest.mark.parametrize("twist_db", [-3.0, 0.0, 6.0])
def test_twist_within_limits_is_accepted(twist_db: float) -> None:
    assert detect(twisted("8", twist_db)) == ["8"]


@pytest.mark.parametrize("twist_db", [-7.0, 12.0])
def test_twist_beyond_limits_is_rejected(twist_db: float) -> None:
    assert detect(twisted("8", twist_db)) == []


def twisted(digit: str, column_over_row_db: float) -> NDArray[np.int16]:
    low, high = tone_frequencies(digit)
    t = np.arange(800) / RATE
    gain = 10 ** (column_over_row_db / 20)
    wave = np.sin(2 * np.pi * low * t) + gain * np.sin(2 * np.pi * high * t)
    return to_int16(wave, 16000)


@pytest.mark.parametrize("sigma", [300.0, 3000.0, 12000.0])
def test_white_noise_is_not_a_digit(sigma: float) -> None:
    noise = np.random.default_rng(7).normal(0, sigma, 30 * RATE)
    assert detect(np.clip(noise, -32768, 32767).astype(np.int16)) == []


@pytest.mark.parametrize("fundamental", [100.0, 120.0, 150.0, 200.0])
def test_a_synthetic_vowel_is_not_a_digit(fundamental: float) -> None:
    """Harmonics of the voice fall close to DTMF frequencies (150 Hz: 750, 1200, 1350...)."""
    t = np.arange(10 * RATE) / RATE
    vibrato = 1 + 0.01 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * fundamental * np.cumsum(vibrato) / RATE
    harmonics = range(1, int(3400 // fundamental))
    voice = sum(formant_gain(k * fundamental) * np.sin(k * phase + k) for k in harmonics)
    assert detect(to_int16(np.asarray(voice), 20000)) == []


def formant_gain(frequency: float) -> float:
    """An open vowel: formants near 730 and 1090 Hz (close to the 697-770 and 1209 tones)."""
    return float(sum(1 / np.hypot(1, (frequency - f) / 60) for f in (730.0, 1090.0, 2440.0)))


@pytest.mark.parametrize("frequency", [697.0, 941.0, 1209.0, 1633.0, 1000.0])
def test_a_single_tone_is_not_a_digit(frequency: float) -> None:
    tone = np.sin(2 * np.pi * frequency * np.arange(RATE) / RATE)
    assert detect(to_int16(tone, 16000)) == []


def test_a_quiet_digit_below_the_threshold_is_ignored() -> None:
    assert detect(dual_tone("2", 200, dbfs=-50)) == []


def test_detector_state_stays_bounded() -> None:
    detector = InbandDetector(DetectorLimits())
    rng = np.random.default_rng(1)
    for size in rng.integers(1, 1500, 500):
        detector.feed(rng.integers(-32768, 32767, size).astype(np.int16))
        assert detector.pending_samples < 160
