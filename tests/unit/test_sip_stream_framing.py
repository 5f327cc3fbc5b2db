"""SIP over a byte stream: framing by Content-Length (RFC 3261 18.3) and what goes out on TCP."""

import pytest

from telephony.sip.message import parse_message
from telephony.sip.stream import FramingError, StreamFramer, for_tcp


def sip(start: str, body: bytes = b"", *, length: str | None = None, extra: str = "") -> bytes:
    content_length = str(len(body)) if length is None else length
    head = (
        f"{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\n"
        f"CSeq: 1 {start.split()[0] if not start.startswith('SIP') else 'INVITE'}\r\n"
        f"Contact: <sip:ringback@127.0.0.2:5060>\r\n{extra}"
    )
    if content_length != "":
        head += f"Content-Length: {content_length}\r\n"
    return head.encode() + b"\r\n" + body


INVITE = sip("INVITE sip:b@y SIP/2.0", b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\n")
OK = sip("SIP/2.0 200 OK")
BYE = sip("BYE sip:b@y SIP/2.0")


@pytest.mark.parametrize("cut", range(1, len(INVITE)))
def test_a_message_split_anywhere_comes_out_whole_once(cut: int) -> None:
    framer = StreamFramer()
    assert framer.feed(INVITE[:cut]) == []
    assert framer.feed(INVITE[cut:]) == [INVITE]
    assert framer.feed(b"") == []


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    out = [message for byte in INVITE + OK for message in framer.feed(bytes([byte]))]
    assert out == [INVITE, OK]


def test_several_messages_and_keepalives_in_one_chunk() -> None:
    framer = StreamFramer()
    chunk = b"\r\n\r\n" + INVITE + OK + b"\r\n" + BYE + INVITE[:10]
    assert framer.feed(chunk) == [INVITE, OK, BYE]
    assert framer.feed(INVITE[10:]) == [INVITE]


def test_the_body_is_cut_at_its_length_not_at_the_next_blank_line() -> None:
    body = b"line one\r\n\r\nline two"
    message = sip("INVITE sip:b@y SIP/2.0", body)
    [framed] = StreamFramer().feed(message + BYE[:5])
    assert parse_message(framed).body == body


def test_compact_content_length_and_bare_line_feeds() -> None:
    message = b"OPTIONS sip:b@y SIP/2.0\nl: 3\n\nabcBYE"
    assert StreamFramer().feed(message) == [b"OPTIONS sip:b@y SIP/2.0\nl: 3\n\nabc"]


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (sip("INVITE sip:b@y SIP/2.0", length=""), "no Content-Length"),
        (sip("INVITE sip:b@y SIP/2.0", length="-1"), "bad Content-Length"),
        (sip("INVITE sip:b@y SIP/2.0", length="12345678901"), "bad Content-Length"),
        (sip("INVITE sip:b@y SIP/2.0", length="1", extra="l: 2\r\n"), "conflicting"),
        (sip("INVITE sip:b@y SIP/2.0", length="70000"), "message of"),
    ],
)
def test_unframeable_lengths_close_the_stream(message: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=problem):
        StreamFramer().feed(message)


def test_a_message_over_the_limit_is_refused_before_its_body_is_held() -> None:
    framer = StreamFramer(max_message_bytes=1000)
    with pytest.raises(FramingError, match="message of"):
        framer.feed(sip("INVITE sip:b@y SIP/2.0", length="900"))


def test_a_head_over_the_limit_is_refused_without_its_end() -> None:
    framer = StreamFramer(max_head_bytes=1024)
    framer.feed(b"INVITE sip:b@y SIP/2.0\r\n")
    with pytest.raises(FramingError, match="header of more than 1024"):
        framer.feed(b"X-Long: " + b"a" * 1100)


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
     b"hello\n"],
)
def test_garbage_closes_the_stream_at_its_first_line(garbage: bytes) -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError, match="not a SIP start line"):
        framer.feed(INVITE + garbage)


def test_garbage_without_a_line_end_is_bounded() -> None:
    framer = StreamFramer(max_head_bytes=64)
    with pytest.raises(FramingError):
        framer.feed(b"\x00" * 65)


def test_over_tcp_our_request_says_tcp_in_its_top_via_and_contact() -> None:
    wire = for_tcp(INVITE.replace(b"Content-Length", b"Via: SIP/2.0/UDP 10.0.0.1;branch=x\r\n"
                                  b"Content-Length"))
    message = parse_message(wire)
    assert message.headers.get_all("Via")[0].startswith("SIP/2.0/TCP 127.0.0.1:5060;")
    assert message.headers.get_all("Via")[1] == "SIP/2.0/UDP 10.0.0.1;branch=x"
    assert message.headers.get("Contact") == "<sip:ringback@127.0.0.2:5060;transport=tcp>"
    assert message.body == parse_message(INVITE).body


def test_over_tcp_a_response_keeps_the_requesters_via() -> None:
    message = parse_message(for_tcp(OK))
    assert message.top_via.transport == "UDP"
    assert message.headers.get("Contact") == "<sip:ringback@127.0.0.2:5060;transport=tcp>"


def test_a_contact_naming_its_transport_is_left_alone() -> None:
    wire = BYE.replace(b"5060>", b"5060;transport=TCP;lr>")
    assert for_tcp(wire).count(b"transport=") == 1
