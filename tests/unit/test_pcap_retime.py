"""The lab's pcap retimer: a replayed key press must be a new RFC 4733 event."""

import struct
from pathlib import Path

import pytest

from lab.make_inband_pcap import write_inband_pcap
from lab.pcap_retime import retimed_pcap


def rtp_starts(data: bytes) -> list[int]:
    """Where each RTP header starts in a little-endian Ethernet/IPv4/UDP pcap."""
    position, starts = 24, []
    while position < len(data):
        (length,) = struct.unpack_from("<I", data, position + 8)
        frame = position + 16
        starts.append(frame + 14 + (data[frame + 14] & 0x0F) * 4 + 8)
        position = frame + length
    return starts


def rtp_headers(path: Path) -> list[tuple[int, int, int]]:
    """(sequence, timestamp, ssrc) of every packet."""
    data = path.read_bytes()
    return [struct.unpack_from("!HII", data, start + 2) for start in rtp_starts(data)]


def without_sequence_and_timestamp(data: bytes) -> bytes:
    blanked = bytearray(data)
    for start in rtp_starts(data):
        blanked[start + 2:start + 8] = bytes(6)
    return bytes(blanked)


def test_every_packet_moves_forward_and_nothing_else_changes(tmp_path: Path) -> None:
    source = write_inband_pcap(tmp_path / "key.pcap", "2")
    moved = retimed_pcap(source, tmp_path / "again.pcap", timestamp_shift=480_000,
                         sequence_shift=1000)
    before, after = rtp_headers(source), rtp_headers(moved)
    assert len(before) == len(after) > 1
    assert after == [(seq + 1000, stamp + 480_000, ssrc) for seq, stamp, ssrc in before]
    assert without_sequence_and_timestamp(source.read_bytes()) == \
        without_sequence_and_timestamp(moved.read_bytes())


def test_fields_wrap_around_their_size(tmp_path: Path) -> None:
    source = write_inband_pcap(tmp_path / "key.pcap", "2")
    moved = retimed_pcap(source, tmp_path / "again.pcap", timestamp_shift=2**32 - 8000,
                         sequence_shift=2**16 - 1000)
    assert rtp_headers(moved)[0][:2] == (0, 0)  # the generator starts at sequence 1000, 8000


@pytest.mark.parametrize("content", [b"", b"not a pcap at all, just text", b"\xd4\xc3\xb2\xa1"])
def test_a_file_that_is_not_a_pcap_is_refused(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "bad.pcap"
    source.write_bytes(content)
    with pytest.raises(ValueError, match="not a classic pcap"):
        retimed_pcap(source, tmp_path / "out.pcap", timestamp_shift=1)
    assert not (tmp_path / "out.pcap").exists()
