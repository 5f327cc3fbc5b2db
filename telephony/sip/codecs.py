"""The audio codecs ringback speaks on RTP: G.711 in both laws, plus RFC 4733 events."""

from dataclasses import dataclass

from audio.g711 import Law

SAMPLE_RATE = 8000
PTIME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE * PTIME_MS // 1000  # 160 samples = 160 bytes of G.711


@dataclass(frozen=True)
class Codec:
    name: str
    payload_type: int
    law: Law
    clock_rate: int = SAMPLE_RATE


PCMU = Codec("PCMU", 0, Law.ULAW)
PCMA = Codec("PCMA", 8, Law.ALAW)
AUDIO_CODECS: tuple[Codec, ...] = (PCMU, PCMA)
TELEPHONE_EVENT = "telephone-event"
DEFAULT_TELEPHONE_EVENT_PT = 101


def codec_by_payload_type(payload_type: int) -> Codec | None:
    return next((c for c in AUDIO_CODECS if c.payload_type == payload_type), None)


@dataclass(frozen=True)
class MediaParams:
    """What offer/answer agreed for one call's audio stream (RFC 3264).

    `remote` is where we send RTP and the only source we accept it from (symmetric RTP).
    `telephone_event_pt` is None when the peer did not agree to RFC 4733 events.
    `sending`/`receiving` follow the agreed direction (sendrecv, sendonly, recvonly, inactive).
    """

    remote: tuple[str, int]
    codec: Codec
    telephone_event_pt: int | None = DEFAULT_TELEPHONE_EVENT_PT
    sending: bool = True
    receiving: bool = True
