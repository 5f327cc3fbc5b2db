import random
import struct

import pytest

from telephony.sip.rtp import MAX_PAYLOAD, RtpPacket, RtpSender, build_rtp, parse_rtp


def header(
    *,
    version: int = 2,
    padding: bool = False,
    extension: bool = False,
    csrc: int = 0,
    marker: bool = False,
    payload_type: int = 0,
    sequence: int = 1,
    timestamp: int = 2,
    ssrc: int = 3,
) -> bytes:
    first = version << 6 | padding << 5 | extension << 4 | csrc
    second = marker << 7 | payload_type
    return struct.pack("!BBHII", first, second, sequence, timestamp, ssrc)


def test_build_then_parse_round_trips() -> None:
    data = build_rtp(8, True, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xd5" * 160)
    assert len(data) == 172
    assert parse_rtp(data) == RtpPacket(8, True, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xd5" * 160)


def test_header_fields_are_read_where_rfc_3550_puts_them() -> None:
    data = bytes.fromhex("80e5 0102 01020304 0a0b0c0d") + b"xy"
    assert parse_rtp(data) == RtpPacket(101, True, 0x0102, 0x01020304, 0x0A0B0C0D, b"xy")


def test_csrcs_and_extension_are_skipped() -> None:
    csrcs = b"\x00\x00\x00\x01\x00\x00\x00\x02"
    extension = struct.pack("!HH", 0xBEDE, 2) + b"\x00" * 8
    data = header(csrc=2, extension=True) + csrcs + extension + b"audio"
    packet = parse_rtp(data)
    assert packet is not None
    assert packet.payload == b"audio"


def test_padding_is_removed() -> None:
    packet = parse_rtp(header(padding=True) + b"abc" + b"\x00\x00\x03")
    assert packet is not None
    assert packet.payload == b"abc"


def test_an_empty_payload_is_still_rtp() -> None:
    packet = parse_rtp(header())
    assert packet is not None
    assert packet.payload == b""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",
        header()[:11],
        header(version=1) + b"x",
        header(version=0) + b"x",
        header(version=3) + b"x",
        header(csrc=3) + b"\x00" * 8,  # claims 12 bytes of CSRC, has 8
        header(extension=True) + b"\xbe\xde",  # extension header cut short
        header(extension=True) + struct.pack("!HH", 0xBEDE, 5) + b"\x00" * 8,
        header(padding=True) + b"ab\x00",  # padding count 0
        header(padding=True) + b"ab\x04",  # more padding than payload
        header(csrc=1, padding=True) + b"\x00\x00\x00\x01" + b"\x06",  # padding into the CSRC
        header() + b"\x00" * (MAX_PAYLOAD + 1),
    ],
)
def test_anything_else_is_none(data: bytes) -> None:
    assert parse_rtp(data) is None


def test_largest_payload_is_accepted() -> None:
    assert parse_rtp(header() + b"\x00" * MAX_PAYLOAD) is not None


def test_random_bytes_never_raise() -> None:
    rng = random.Random(4733)
    for _ in range(20000):
        size = rng.choice([0, 1, 11, 12, 13, 16, 40, 172, 1600])
        data = bytes(rng.getrandbits(8) for _ in range(size))
        if data:
            data = bytes([0x80 | data[0] & 0x3F]) + data[1:]  # mostly version 2
        parse_rtp(data)


def test_sender_starts_at_random_values() -> None:
    senders = [RtpSender() for _ in range(8)]
    assert len({s.ssrc for s in senders}) > 1
    assert len({s.sequence for s in senders}) > 1
    assert len({s.timestamp for s in senders}) > 1


def test_sequence_wraps_and_clock_moves_only_on_advance() -> None:
    sender = RtpSender(ssrc=7, sequence=65534, timestamp=0xFFFFFF00)
    packets = []
    for _ in range(3):
        packets.append(parse_rtp(sender.packet(0, b"\xff" * 160)))
        sender.advance()
    assert [p.sequence for p in packets if p] == [65534, 65535, 0]
    assert [p.timestamp for p in packets if p] == [0xFFFFFF00, 0xFFFFFFA0, 0x40]
    assert all(p is not None and p.ssrc == 7 for p in packets)


def test_fixed_timestamp_and_marker() -> None:
    sender = RtpSender(ssrc=1, sequence=10, timestamp=5000)
    first = parse_rtp(sender.packet(101, b"\x05\x0a\x00\xa0", True, 4000))
    second = parse_rtp(sender.packet(0, b"\xff"))
    assert first == RtpPacket(101, True, 10, 4000, 1, b"\x05\x0a\x00\xa0")
    assert second == RtpPacket(0, False, 11, 5000, 1, b"\xff")


def test_sender_packets_are_plain_build_rtp_packets() -> None:
    sender = RtpSender(ssrc=5, sequence=6, timestamp=7)
    assert sender.packet(0, b"x") == build_rtp(0, False, 6, 7, 5, b"x")
