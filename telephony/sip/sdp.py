"""SDP (RFC 4566) for one G.711 audio stream and RFC 3264 offer/answer, sans-IO.

Only the first audio stream with a non-zero port and RTP/AVP is used; every other stream of
an offer is rejected with port 0 in the answer (RFC 3264 §6).
"""

import ipaddress
import re
import secrets
from dataclasses import dataclass, field, replace

from telephony.sip.codecs import (
    AUDIO_CODECS,
    DEFAULT_TELEPHONE_EVENT_PT,
    PTIME_MS,
    SAMPLE_RATE,
    TELEPHONE_EVENT,
    Codec,
    MediaParams,
    codec_by_payload_type,
)
from telephony.sip.errors import LocalProtocolError, RemoteProtocolError
from telephony.sip.uri import bare_host

MAX_SDP_BYTES = 16 * 1024
MAX_MEDIA_SECTIONS = 64
DEFAULT_TELEPHONE_EVENT_FMTP = "0-16"
SESSION_NAME = "ringback"
AUDIO_PROTO = "RTP/AVP"
_FIRST_DYNAMIC_PT = 96
_TIMING = re.compile(r"^[0-9]{1,20} [0-9]{1,20}$")

_DIRECTION_FLAGS: dict[str, tuple[bool, bool]] = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}


class SdpError(RemoteProtocolError):
    """SDP we cannot read, or an offer/answer with no stream we can use (answer 488)."""


def _is_number(text: str, max_digits: int = 10) -> bool:
    """ASCII digits only: str.isdigit() alone accepts "²" and "٣"."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def _direction_name(send: bool, receive: bool) -> str:
    return next(name for name, flags in _DIRECTION_FLAGS.items() if flags == (send, receive))


@dataclass(frozen=True)
class Origin:
    """The o= line."""

    username: str
    session_id: str
    session_version: int
    net_type: str
    addr_type: str
    address: str


@dataclass(frozen=True)
class Connection:
    """A c= line, without multicast TTL or address count."""

    net_type: str
    addr_type: str
    address: str

    @property
    def is_unspecified(self) -> bool:
        """0.0.0.0 (or ::): RFC 2543 hold, or an address not known yet."""
        try:
            return ipaddress.ip_address(self.address).is_unspecified
        except ValueError:
            return False


@dataclass(frozen=True)
class RtpMap:
    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True)
class MediaDescription:
    """One m= section and the attributes we read from it."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    direction: str | None = None
    rtpmap: dict[int, RtpMap] = field(default_factory=dict, hash=False)
    fmtp: dict[int, str] = field(default_factory=dict, hash=False)
    ptime: int | None = None

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats that are RTP payload type numbers, in offered order."""
        return tuple(int(f) for f in self.formats if _is_number(f, 3) and int(f) < 128)

    @property
    def is_usable_audio(self) -> bool:
        return (
            self.media.lower() == "audio" and self.port != 0 and self.proto.upper() == AUDIO_PROTO
        )


@dataclass(frozen=True)
class SessionDescription:
    """A parsed SDP body."""

    origin: Origin
    session_name: str
    timing: str
    connection: Connection | None
    direction: str | None
    media: tuple[MediaDescription, ...]

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The media-level c= if any, else the session-level one."""
        return media.connection or self.connection

    def direction_for(self, media: MediaDescription) -> str:
        """The media-level direction attribute, else the session-level one, else sendrecv."""
        return media.direction or self.direction or "sendrecv"

    def audio_index(self) -> int:
        """Index of the stream we use: the first audio one with a port and RTP/AVP."""
        for index, media in enumerate(self.media):
            if media.is_usable_audio:
                return index
        raise SdpError("no RTP/AVP audio stream")


# --- parsing -------------------------------------------------------------------------------


def _lines(data: bytes) -> list[tuple[str, str]]:
    if len(data) > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {len(data)} bytes")
    text = data.decode("utf-8", errors="replace")
    lines: list[tuple[str, str]] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"bad SDP line {line[:40]!r}")
        lines.append((line[0], line[2:]))
    return lines


def _sections(lines: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Session-level lines, then one list per m= section (starting with its m= line)."""
    if sum(1 for kind, _ in lines if kind == "m") > MAX_MEDIA_SECTIONS:
        raise SdpError("too many m= lines")
    sections: list[list[tuple[str, str]]] = [[]]
    for kind, value in lines:
        if kind == "m":
            sections.append([])
        sections[-1].append((kind, value))
    return sections


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not _is_number(parts[2], 20):
        raise SdpError(f"bad o= line {value[:80]!r}")
    username, session_id, version, net_type, addr_type, address = parts
    return Origin(username, session_id, int(version), net_type, addr_type.upper(), address)


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3 or not parts[2]:
        raise SdpError(f"bad c= line {value[:80]!r}")
    address = parts[2].split("/")[0]
    if not address:
        raise SdpError(f"bad c= address {value[:80]!r}")
    return Connection(parts[0].upper(), parts[1].upper(), address)


def _parse_port(text: str) -> int:
    port = text.split("/")[0]
    if not _is_number(port, 5) or int(port) > 65535:
        raise SdpError(f"bad m= port {text[:20]!r}")
    return int(port)


def _parse_rtpmap(value: str) -> tuple[int, RtpMap] | None:
    pt_text, _, encoding = value.partition(" ")
    parts = encoding.strip().split("/")
    if not _is_number(pt_text, 3) or len(parts) not in (2, 3) or not _is_number(parts[1]):
        return None
    channels = parts[2] if len(parts) == 3 else "1"
    if not _is_number(channels, 3):
        return None
    return int(pt_text), RtpMap(parts[0], int(parts[1]), int(channels))


def _attribute(value: str) -> tuple[str, str]:
    name, _, rest = value.partition(":")
    return name.strip().lower(), rest.strip()


@dataclass
class _MediaBuilder:
    connection: Connection | None = None
    direction: str | None = None
    rtpmap: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None

    def add_attribute(self, value: str) -> None:
        name, rest = _attribute(value)
        if name in _DIRECTION_FLAGS:
            self.direction = name
        elif name == "rtpmap" and (mapped := _parse_rtpmap(rest)) is not None:
            self.rtpmap.setdefault(*mapped)
        elif name == "fmtp":
            pt_text, _, params = rest.partition(" ")
            if _is_number(pt_text, 3):
                self.fmtp.setdefault(int(pt_text), params.strip())
        elif name == "ptime" and _is_number(rest, 5):
            self.ptime = int(rest)


def _parse_media(section: list[tuple[str, str]]) -> MediaDescription:
    _, m_value = section[0]
    parts = m_value.split()
    if len(parts) < 3:
        raise SdpError(f"bad m= line {m_value[:80]!r}")
    builder = _MediaBuilder()
    for kind, value in section[1:]:
        if kind == "c" and builder.connection is None:
            builder.connection = _parse_connection(value)
        elif kind == "a":
            builder.add_attribute(value)
    return MediaDescription(
        media=parts[0],
        port=_parse_port(parts[1]),
        proto=parts[2],
        formats=tuple(parts[3:]),
        connection=builder.connection,
        direction=builder.direction,
        rtpmap=builder.rtpmap,
        fmtp=builder.fmtp,
        ptime=builder.ptime,
    )


def parse_sdp(data: bytes) -> SessionDescription:
    """Parse an SDP body; raise SdpError (and nothing else) when it is not one we can read."""
    lines = _lines(data)
    if not lines or lines[0] != ("v", "0"):
        raise SdpError("SDP does not start with v=0")
    session, *media_sections = _sections(lines)
    origin: Origin | None = None
    name, timing = "-", "0 0"
    connection: Connection | None = None
    direction: str | None = None
    for kind, value in session:
        if kind == "o" and origin is None:
            origin = _parse_origin(value)
        elif kind == "s":
            name = value
        elif kind == "t" and _TIMING.match(value):
            timing = value
        elif kind == "c" and connection is None:
            connection = _parse_connection(value)
        elif kind == "a" and _attribute(value)[0] in _DIRECTION_FLAGS:
            direction = _attribute(value)[0]
    if origin is None:
        raise SdpError("SDP without o= line")
    media = tuple(_parse_media(section) for section in media_sections)
    return SessionDescription(origin, name, timing, connection, direction, media)


# --- offer/answer --------------------------------------------------------------------------


def _codec_for(media: MediaDescription, pt: int, supported: tuple[Codec, ...]) -> Codec | None:
    """Our codec for payload type `pt` of `media` (numbered as the peer numbers it), if any."""
    rtpmap = media.rtpmap.get(pt)
    if rtpmap is None:  # a static payload type (RFC 3551) needs no rtpmap
        static = codec_by_payload_type(pt) if pt < _FIRST_DYNAMIC_PT else None
        if static is None:
            return None
        rtpmap = RtpMap(static.name, static.clock_rate)
    for codec in supported:
        if (
            codec.name.lower() == rtpmap.encoding.lower()
            and codec.clock_rate == rtpmap.clock_rate
            and rtpmap.channels == 1
        ):
            return codec if codec.payload_type == pt else replace(codec, payload_type=pt)
    return None


def _telephone_event_pt(media: MediaDescription) -> int | None:
    for pt in media.payload_types:
        rtpmap = media.rtpmap.get(pt)
        if (
            rtpmap is not None
            and rtpmap.encoding.lower() == TELEPHONE_EVENT
            and rtpmap.clock_rate == SAMPLE_RATE
        ):
            return pt
    return None


def _pick_codec(
    media: MediaDescription, supported: tuple[Codec, ...], prefer: Codec | None = None
) -> Codec:
    """`prefer` if still offered, else the first offered codec we support, in their order."""
    offered = [c for pt in media.payload_types if (c := _codec_for(media, pt, supported))]
    if prefer is not None:
        kept = next((c for c in offered if c.name == prefer.name), None)
        if kept is not None:
            return kept
    if not offered:
        raise SdpError("no common audio codec")
    return offered[0]


def _remote(sdp: SessionDescription, media: MediaDescription) -> tuple[Connection, str]:
    """The peer's connection for `media`, and its direction seen from the peer."""
    connection = sdp.connection_for(media)
    if connection is None:
        raise SdpError("audio stream without c= line")
    if connection.net_type != "IN" or connection.addr_type not in ("IP4", "IP6"):
        raise SdpError(f"unsupported address type {connection.addr_type[:10]!r}")
    send, receive = _DIRECTION_FLAGS[sdp.direction_for(media)]
    if connection.is_unspecified:
        receive = False
    return connection, _direction_name(send, receive)


def _addr_type(host: str) -> str:
    return "IP6" if ":" in host else "IP4"


def _rejected(media: MediaDescription) -> str:
    formats = " ".join(media.formats) or "0"
    return f"m={media.media} 0 {media.proto} {formats}"


@dataclass(frozen=True)
class _AudioLines:
    port: int
    codecs: tuple[Codec, ...]
    telephone_event_pt: int | None
    telephone_event_fmtp: str
    direction: str

    def render(self) -> list[str]:
        pts = [c.payload_type for c in self.codecs]
        if self.telephone_event_pt is not None:
            pts.append(self.telephone_event_pt)
        lines = [f"m=audio {self.port} {AUDIO_PROTO} {' '.join(map(str, pts))}"]
        lines += [f"a=rtpmap:{c.payload_type} {c.name}/{c.clock_rate}" for c in self.codecs]
        if self.telephone_event_pt is not None:
            pt = self.telephone_event_pt
            lines.append(f"a=rtpmap:{pt} {TELEPHONE_EVENT}/{SAMPLE_RATE}")
            lines.append(f"a=fmtp:{pt} {self.telephone_event_fmtp}")
        return [*lines, f"a=ptime:{PTIME_MS}", f"a={self.direction}"]


class LocalMedia:
    """Our side of one call's audio stream: the SDP we offer and answer, and its o= version."""

    def __init__(
        self,
        host: str,
        rtp_port: int,
        codecs: tuple[Codec, ...] = AUDIO_CODECS,
        telephone_event_pt: int = DEFAULT_TELEPHONE_EVENT_PT,
        session_id: int | None = None,
    ) -> None:
        if not codecs:
            raise LocalProtocolError("no codecs to offer")
        if not 0 < rtp_port < 65536:
            raise LocalProtocolError(f"bad RTP port {rtp_port}")
        if not 0 <= telephone_event_pt < 128 or any(
            c.payload_type == telephone_event_pt for c in codecs
        ):
            raise LocalProtocolError(f"bad telephone-event payload type {telephone_event_pt}")
        self.host = bare_host(host)
        self.rtp_port = rtp_port
        self.codecs = codecs
        self.telephone_event_pt = telephone_event_pt
        self.session_id = secrets.randbits(62) if session_id is None else session_id
        self.session_version = 1
        self._direction = "sendrecv"
        self._last_lines: list[str] | None = None
        self._audio: _AudioLines | None = None  # the audio stream of our last SDP

    # -- writing ---------------------------------------------------------------------------

    def _origin_line(self) -> str:
        return (
            f"o=- {self.session_id} {self.session_version} IN {_addr_type(self.host)} {self.host}"
        )

    def _header_lines(self, timing: str = "0 0") -> list[str]:
        return [
            "v=0",
            f"s={SESSION_NAME}",
            f"c=IN {_addr_type(self.host)} {self.host}",
            f"t={timing}",
        ]

    def _emit(self, lines: list[str], audio: _AudioLines) -> bytes:
        """Our SDP from `lines` (without o=); the version moves only when they changed."""
        if self._last_lines is not None and lines != self._last_lines:
            self.session_version += 1
        self._last_lines = lines
        self._audio = audio
        return self._render(lines)

    def _render(self, lines: list[str]) -> bytes:
        full = [lines[0], self._origin_line(), *lines[1:]]
        return ("\r\n".join(full) + "\r\n").encode()

    def current_sdp(self) -> bytes:
        """The last SDP we sent, unchanged (an offer if we sent none yet)."""
        if self._last_lines is None:
            return self.offer()
        return self._render(self._last_lines)

    # -- offering --------------------------------------------------------------------------

    def offer(self, direction: str = "sendrecv") -> bytes:
        """Our offer: every codec in our order, telephone-event, ptime 20, `direction`."""
        if direction not in _DIRECTION_FLAGS:
            raise LocalProtocolError(f"bad direction {direction!r}")
        self._direction = direction
        audio = self._offer_audio()
        return self._emit(self._header_lines() + audio.render(), audio)

    def _offer_audio(self) -> _AudioLines:
        return _AudioLines(
            self.rtp_port,
            self.codecs,
            self.telephone_event_pt,
            DEFAULT_TELEPHONE_EVENT_FMTP,
            self._direction,
        )

    def accept_answer(self, answer: bytes) -> MediaParams:
        """What the peer's answer to our offer agreed; SdpError if it accepted nothing."""
        offered = self._audio or self._offer_audio()
        sdp = parse_sdp(answer)
        media = sdp.media[sdp.audio_index()]
        codec = _pick_codec(media, offered.codecs)
        connection, peer_direction = _remote(sdp, media)
        peer_send, peer_receive = _DIRECTION_FLAGS[peer_direction]
        our_send, our_receive = _DIRECTION_FLAGS[offered.direction]
        event_pt = _telephone_event_pt(media) if offered.telephone_event_pt is not None else None
        return MediaParams(
            remote=(connection.address, media.port),
            codec=codec,
            telephone_event_pt=event_pt,
            sending=our_send and peer_receive,
            receiving=our_receive and peer_send,
        )

    # -- answering -------------------------------------------------------------------------

    def answer(self, offer: bytes) -> tuple[bytes, MediaParams]:
        """Answer an initial offer: the offerer's first codec we support, direction mirrored."""
        return self._answer(offer, prefer=None)

    def reanswer(self, offer: bytes, current: MediaParams) -> tuple[bytes, MediaParams]:
        """Answer a re-INVITE/UPDATE offer, keeping `current`'s codec while it is offered."""
        return self._answer(offer, prefer=current.codec)

    def _answer(self, offer: bytes, prefer: Codec | None) -> tuple[bytes, MediaParams]:
        sdp = parse_sdp(offer)
        index = sdp.audio_index()
        media = sdp.media[index]
        codec = _pick_codec(media, self.codecs, prefer)
        connection, peer_direction = _remote(sdp, media)
        peer_send, peer_receive = _DIRECTION_FLAGS[peer_direction]
        our_send, our_receive = _DIRECTION_FLAGS[self._direction]
        sending, receiving = peer_receive and our_send, peer_send and our_receive
        event_pt = _telephone_event_pt(media)
        audio = _AudioLines(
            self.rtp_port,
            (codec,),
            event_pt,
            media.fmtp.get(event_pt, DEFAULT_TELEPHONE_EVENT_FMTP)
            if event_pt is not None
            else DEFAULT_TELEPHONE_EVENT_FMTP,
            _direction_name(sending, receiving),
        )
        lines = self._header_lines(sdp.timing)
        for position, other in enumerate(sdp.media):
            lines += audio.render() if position == index else [_rejected(other)]
        params = MediaParams(
            remote=(connection.address, media.port),
            codec=codec,
            telephone_event_pt=event_pt,
            sending=sending,
            receiving=receiving,
        )
        return self._emit(lines, audio), params
