"""Write a pcap of RTP/PCMU packets carrying an in-band DTMF digit, for sipp's play_pcap_audio.

Default: digit '5' (770 Hz + 1336 Hz) for 200 ms between 300 ms of silence before and after,
20 ms packets (160 μ-law samples), payload type 0, Ethernet/IPv4/UDP framing like the Debian
``dtmf_2833_*.pcap`` files (sipp rewrites addresses and ports when it replays).

Usage: python -m lab.make_inband_pcap OUT.pcap [DIGIT]
"""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

SAMPLE_RATE = 8000
SAMPLES_PER_PACKET = 160
DTMF_FREQS: dict[str, tuple[int, int]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


def linear_to_ulaw(sample: int) -> int:
    """G.711 μ-law encode one 16-bit linear sample (ITU-T reference algorithm)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def dtmf_samples(
    digit: str, tone_ms: int = 200, silence_ms: int = 300, amplitude: float = 0.3
) -> list[int]:
    """16-bit samples: silence, the dual tone (each at ``amplitude`` of full scale), silence."""
    low, high = DTMF_FREQS[digit.upper()]
    pad = [0] * (SAMPLE_RATE * silence_ms // 1000)
    n = SAMPLE_RATE * tone_ms // 1000
    peak = amplitude * 32767
    tone = [
        round(
            peak * math.sin(2 * math.pi * low * i / SAMPLE_RATE)
            + peak * math.sin(2 * math.pi * high * i / SAMPLE_RATE)
        )
        for i in range(n)
    ]
    samples = pad + tone + pad
    samples += [0] * (-len(samples) % SAMPLES_PER_PACKET)
    return samples


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _frame(payload: bytes, src_port: int, dst_port: int, ident: int) -> bytes:
    src_ip, dst_ip = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip_header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, src_ip, dst_ip
    )
    ip_header = ip_header[:10] + struct.pack("!H", _checksum(ip_header)) + ip_header[12:]
    ethernet = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ethernet + ip_header + udp


def write_inband_pcap(
    path: Path,
    digit: str = "5",
    tone_ms: int = 200,
    silence_ms: int = 300,
    ssrc: int = 0x5151_0005,
    src_port: int = 49176,
    dst_port: int = 10000,
) -> Path:
    """Write the capture to ``path`` and return it."""
    samples = dtmf_samples(digit, tone_ms, silence_ms)
    ulaw = bytes(linear_to_ulaw(s) for s in samples)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet
    seq, timestamp = 1000, 8000
    for index, offset in enumerate(range(0, len(ulaw), SAMPLES_PER_PACKET)):
        marker = 0x80 if index == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | 0, seq & 0xFFFF, timestamp, ssrc)
        frame = _frame(rtp + ulaw[offset : offset + SAMPLES_PER_PACKET], src_port, dst_port, index)
        usec = index * 20_000
        out += struct.pack("<IIII", 1_700_000_000 + usec // 1_000_000, usec % 1_000_000,
                           len(frame), len(frame))  # fmt: skip
        out += frame
        seq += 1
        timestamp += SAMPLES_PER_PACKET
    path.write_bytes(bytes(out))
    return path


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    write_inband_pcap(Path(argv[0]), argv[1] if len(argv) == 2 else "5")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
