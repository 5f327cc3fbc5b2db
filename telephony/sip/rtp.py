"""RTP packets (RFC 3550), sans-IO: parse what arrives, build what we send.

`parse_rtp` never raises: anything that is not a well-formed RTP version 2 packet is `None`.
`RtpSender` holds one outgoing stream's identity and clocks; building a packet is one
`struct.pack` of the 12-byte header and one concatenation, cheap enough for 50,000 packets/s.
"""

import secrets
import struct
from dataclasses import dataclass

from telephony.sip.codecs import SAMPLES_PER_FRAME

RTP_VERSION = 2
HEADER_SIZE = 12
MAX_PAYLOAD = 1500

_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_FIRST_BYTE = RTP_VERSION << 6  # no padding, no extension, no CSRC
_MARKER = 0x80


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """One RTP packet, or None for anything else (wrong version, inconsistent lengths, too big)."""
    size = len(data)
    if size < HEADER_SIZE:
        return None
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first == _FIRST_BYTE:  # the usual packet: no padding, extension or CSRC
        start, end = HEADER_SIZE, size
    elif first >> 6 == RTP_VERSION:
        start = _payload_start(data, first)
        end = _payload_end(data, first, start) if start <= size else -1
    else:
        return None
    if end < start or end - start > MAX_PAYLOAD:
        return None
    return RtpPacket(second & 0x7F, second > 0x7F, sequence, timestamp, ssrc, data[start:end])


def _payload_start(data: bytes, first: int) -> int:
    """Offset of the payload after CSRCs and the header extension; past the end when truncated."""
    start = HEADER_SIZE + 4 * (first & 0x0F)
    if not first & 0x10:
        return start
    if start + _EXTENSION_HEADER.size > len(data):
        return len(data) + 1
    words: int = _EXTENSION_HEADER.unpack_from(data, start)[1]
    return start + _EXTENSION_HEADER.size + 4 * words


def _payload_end(data: bytes, first: int, start: int) -> int:
    """Offset just past the payload; -1 when the padding count is impossible."""
    end = len(data)
    if not first & 0x20:
        return end
    padding = data[-1]
    if padding == 0 or padding > end - start:
        return -1
    return end - padding


def build_rtp(
    payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int, payload: bytes
) -> bytes:
    """A plain RTP packet: version 2, no padding, extension or CSRC."""
    second = payload_type | _MARKER if marker else payload_type
    return _HEADER.pack(_FIRST_BYTE, second, sequence, timestamp, ssrc) + payload


class RtpSender:
    """One outgoing stream: its SSRC, next sequence number and media clock (RFC 3550 5.1).

    All three start random. Every packet takes the next sequence number (mod 2^16); the media
    clock (`timestamp`, mod 2^32) moves only through `advance`, once per 20 ms frame, so that
    packets of an RFC 4733 event can share one timestamp while the clock keeps running.
    """

    __slots__ = ("sequence", "ssrc", "timestamp")

    def __init__(
        self, *, ssrc: int | None = None, sequence: int | None = None, timestamp: int | None = None
    ) -> None:
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.sequence = secrets.randbits(16) if sequence is None else sequence
        self.timestamp = secrets.randbits(32) if timestamp is None else timestamp

    def packet(
        self, payload_type: int, payload: bytes, marker: bool = False, timestamp: int | None = None
    ) -> bytes:
        """The next packet; stamped with the media clock unless `timestamp` is given."""
        sequence = self.sequence
        self.sequence = (sequence + 1) & 0xFFFF
        stamp = self.timestamp if timestamp is None else timestamp
        second = payload_type | _MARKER if marker else payload_type
        return _HEADER.pack(_FIRST_BYTE, second, sequence, stamp, self.ssrc) + payload

    def advance(self, samples: int = SAMPLES_PER_FRAME) -> None:
        """Move the media clock on by `samples` (one frame unless told)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
