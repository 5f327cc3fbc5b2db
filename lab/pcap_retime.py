"""Copy an RTP capture with its RTP timestamps and sequence numbers moved forward.

sipp's ``play_pcap_audio`` sends a capture's RTP payloads as they are, so playing one RFC 4733
capture twice in a call sends one event twice: same timestamp, which a receiver rightly takes
for a retransmission of the first key press (RFC 4733 section 2.5.1.4). A copy moved forward
is a second, distinct press of the same key.

Reads classic pcap files (either byte order) of Ethernet/IPv4/UDP frames, as Debian's
``sip-tester`` ships them; other frames are copied unchanged.
"""

from __future__ import annotations

import struct
from pathlib import Path

GLOBAL_HEADER_SIZE = 24
RECORD_HEADER_SIZE = 16
ETHERNET_HEADER_SIZE = 14
ETHERTYPE_IPV4 = 0x0800
LINKTYPE_ETHERNET = 1
IP_PROTOCOL_UDP = 17
UDP_HEADER_SIZE = 8
RTP_MIN_HEADER_SIZE = 12
MAGIC_LITTLE = b"\xd4\xc3\xb2\xa1"
MAGIC_BIG = b"\xa1\xb2\xc3\xd4"


def _rtp_offset(frame: bytes) -> int | None:
    """Where the RTP header starts in an Ethernet/IPv4/UDP frame, else None."""
    if len(frame) < ETHERNET_HEADER_SIZE + 20:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype != ETHERTYPE_IPV4:
        return None
    ip_header = (frame[ETHERNET_HEADER_SIZE] & 0x0F) * 4
    if frame[ETHERNET_HEADER_SIZE + 9] != IP_PROTOCOL_UDP:
        return None
    offset = ETHERNET_HEADER_SIZE + ip_header + UDP_HEADER_SIZE
    if len(frame) < offset + RTP_MIN_HEADER_SIZE or frame[offset] >> 6 != 2:
        return None
    return offset


def _moved(frame: bytes, timestamp_shift: int, sequence_shift: int) -> bytes:
    offset = _rtp_offset(frame)
    if offset is None:
        return frame
    sequence, timestamp = struct.unpack_from("!HI", frame, offset + 2)
    moved = bytearray(frame)
    struct.pack_into("!HI", moved, offset + 2, (sequence + sequence_shift) & 0xFFFF,
                     (timestamp + timestamp_shift) & 0xFFFFFFFF)
    return bytes(moved)


def retimed_pcap(source: Path, dest: Path, *, timestamp_shift: int,
                 sequence_shift: int = 1000) -> Path:
    """Write ``dest``: ``source`` with every RTP packet's timestamp and sequence number moved
    forward (modulo their field sizes). ValueError for a file that is not an Ethernet pcap."""
    data = source.read_bytes()
    magic = data[:4]
    if magic not in (MAGIC_LITTLE, MAGIC_BIG) or len(data) < GLOBAL_HEADER_SIZE:
        raise ValueError(f"{source}: not a classic pcap file")
    order = "<" if magic == MAGIC_LITTLE else ">"
    (linktype,) = struct.unpack_from(f"{order}I", data, 20)
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{source}: link type {linktype}, not Ethernet")
    out = bytearray(data[:GLOBAL_HEADER_SIZE])
    position = GLOBAL_HEADER_SIZE
    while position + RECORD_HEADER_SIZE <= len(data):
        header = data[position:position + RECORD_HEADER_SIZE]
        (captured,) = struct.unpack_from(f"{order}I", header, 8)
        frame = data[position + RECORD_HEADER_SIZE:position + RECORD_HEADER_SIZE + captured]
        if len(frame) != captured:
            raise ValueError(f"{source}: truncated record at byte {position}")
        out += header + _moved(frame, timestamp_shift, sequence_shift)
        position += RECORD_HEADER_SIZE + captured
    dest.write_bytes(bytes(out))
    return dest
