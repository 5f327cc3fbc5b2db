"""Malformed SIP: control characters refused (RFC 3261 25.1 allows none but HTAB in a header),
and the 400 a malformed request with a usable Via earns instead of silence."""

import random
import re

import pytest

from telephony.sip.errors import MessageTooLarge, SipParseError
from telephony.sip.message import (
    MAX_HEADER_FIELDS,
    Request,
    Response,
    parse_message,
    reply_to_malformed,
)
from telephony.sip.transaction import TimerConfig, TransactionLayer

SOURCE = ("198.51.100.7", 40123)


def request(*extra: str, **replace: str) -> bytes:
    """An OPTIONS as a peer would send it; `replace` swaps a header's whole line by name."""
    fields = {
        "Via": "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKbad1;rport",
        "From": "From: <sip:peer@example.com>;tag=p1",
        "To": "To: <sip:robot@example.com>",
        "Call-ID": "Call-ID: bad-1@198.51.100.7",
        "CSeq": "CSeq: 7 OPTIONS",
    }
    fields.update({name.replace("_", "-"): line for name, line in replace.items()})
    lines = ["OPTIONS sip:robot@example.com SIP/2.0", *fields.values(), "Max-Forwards: 70",
             *extra, "Content-Length: 0"]
    return ("\r\n".join(line for line in lines if line) + "\r\n\r\n").encode()


def test_the_request_these_tests_damage_is_well_formed() -> None:
    assert isinstance(parse_message(request()), Request)


def refusal(data: bytes) -> SipParseError:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    return caught.value


CONTROLS = [code for code in [*range(0x20), 0x7F] if code not in (0x09, 0x0A)]


@pytest.mark.parametrize("code", CONTROLS, ids=lambda code: f"0x{code:02x}")
def test_a_control_character_in_a_header_value_is_refused(code: int) -> None:
    error = refusal(request(From=f"From: <sip:pe{chr(code)}er@example.com>;tag=p1"))
    assert str(error) == f"control character 0x{code:02x} in the From header"


@pytest.mark.parametrize("code", [0x00, 0x0B, 0x0C, 0x1C, 0x1F])
def test_a_control_character_at_either_end_is_not_stripped_away(code: int) -> None:
    refusal(request(f"Subject: {chr(code)}hello"))
    refusal(request(f"Subject: hello{chr(code)}"))
    refusal(request("Subject: hello", f" {chr(code)}folded"))


def test_a_control_character_in_a_folded_line_names_its_header() -> None:
    error = refusal(request("Subject: hello", "\tworld\x00"))
    assert str(error) == "control character 0x00 in the Subject header"


def test_control_characters_in_the_start_line_and_in_names_are_refused() -> None:
    data = request().replace(b"OPTIONS sip:robot@", b"OPTIONS sip:ro\x00bot@")
    assert str(refusal(data)) == "control character 0x00 in the start line"
    assert str(refusal(request("X-Bad\x01Name: 1"))) == "control character 0x01 in a header line"
    response = b"SIP/2.0 200 O\x07K\r\n" + request().split(b"\r\n", 1)[1]
    assert str(refusal(response)) == "control character 0x07 in the start line"


def test_tabs_and_utf8_are_still_welcome() -> None:
    message = parse_message(
        request("Subject:\tone\t two", "\tthree",
                From='From: "Ива\tн \u0085" <sip:peer@example.com>;tag=p1')
    )
    assert message.from_address.display_name == "Ива\tн \u0085"
    assert message.headers.get("Subject") == "one\t two three"


# --- what a malformed datagram earns -------------------------------------------------------------


def reply(data: bytes, error: SipParseError | None = None) -> Response | None:
    if error is None:
        with pytest.raises(SipParseError) as caught:
            parse_message(data)
        error = caught.value
    return reply_to_malformed(data, error)


def test_a_nul_in_a_header_gets_a_400_naming_it_that_the_sender_can_read() -> None:
    response = reply(request(From="From: <sip:pe\x00er@example.com>;tag=p1"))
    assert response is not None
    assert (response.status, response.reason) == (
        400, "Bad Request: control character 0x00 in the From header"
    )
    echoed = parse_message(response.to_bytes())  # our 400 itself is well formed
    assert isinstance(echoed, Response)
    assert echoed.headers.get("Via") == (
        "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKbad1;rport"
    )
    assert echoed.headers.get("From") == "<sip:peer@example.com>;tag=p1"  # the NUL left out
    assert echoed.call_id == "bad-1@198.51.100.7" and echoed.cseq == (7, "OPTIONS")
    assert echoed.to_address.tag  # RFC 3261 8.2.6.2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (request(Call_ID=""), "Bad Request: missing Call-ID"),
        (request(CSeq="CSeq: 7 INVITE"), "Bad Request: CSeq method does not match the request "
                                          "method"),
        (request(To="To: <http://example.com>"), "Bad Request: not a SIP URI: 'http://example.com'"),
        (request(CSeq="CSeq: seven OPTIONS"), "Bad Request: bad CSeq 'seven OPTIONS'"),
        (request("Bad Name: x"), "Bad Request: bad header line 'Bad Name: x'"),
        (request(From="From: <sip:p\u00e9er@example.com>").replace("é".encode(), b"\xff"),
         "Bad Request: headers are not UTF-8"),
    ],
)
def test_malformed_requests_get_a_400_with_the_problem(data: bytes, reason: str) -> None:
    response = reply(data)
    assert response is not None
    assert (response.status, response.reason) == (400, reason)


def test_over_our_limits_is_a_400_too() -> None:
    data = request(*(f"X-Pad-{index}: {index}" for index in range(MAX_HEADER_FIELDS)))
    error = refusal(data)
    assert isinstance(error, MessageTooLarge)
    response = reply_to_malformed(data, error)
    assert response is not None and response.status == 400
    assert re.fullmatch(r"Bad Request: \d+ header fields", response.reason)


def test_the_reason_phrase_stays_printable_ascii() -> None:
    response = reply(request("Bad Name\u00e9\x1b: x"))
    assert response is not None
    assert all(0x20 <= ord(char) < 0x7F for char in response.reason)
    parse_message(response.to_bytes())


@pytest.mark.parametrize(
    "data",
    [
        request(Via="Via: SIP/2.0/UDP 198.51.100.7\x00:5060;branch=z9hG4bKbad1"),  # dirty Via
        request(Via="Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKbad1\r\nVia: \x00"),
        request(Via="Via: HTTP/1.1 198.51.100.7"),  # unreadable Via
        request(Via=""),  # no Via at all
        request(From="From: <sip:pe\x00er@example.com>").replace(b"OPTIONS sip", b"ACK sip")
        .replace(b"7 OPTIONS", b"7 ACK"),  # never answer an ACK
        b"SIP/2.0 200 OK\r\n" + request(From="From: \x00").split(b"\r\n", 1)[1],  # a response
        b"OPTIONS sip:robot@example.com SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"",
    ],
)
def test_what_cannot_be_answered_is_dropped(data: bytes) -> None:
    assert reply(data, SipParseError("malformed")) is None


def test_random_damage_never_breaks_the_reply() -> None:
    rng = random.Random(8)
    base = request(From="From: <sip:pe\x00er@example.com>;tag=p1")
    for _ in range(2000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            position = rng.randrange(len(data))
            data[position : position + rng.randrange(0, 3)] = bytes(
                [rng.choice(b"\x00\r\n:;<>\"\\ \t\xffaZ")]
            )
        response = reply_to_malformed(bytes(data), SipParseError("damaged"))
        if response is not None:
            assert response.to_bytes().startswith(b"SIP/2.0 400 Bad Request: damaged\r\n")


# --- the transaction layer sends it --------------------------------------------------------------


def test_the_layer_answers_where_rport_says() -> None:
    layer = TransactionLayer(TimerConfig())
    data = request(From="From: <sip:pe\x00er@example.com>;tag=p1")
    layer.reject_malformed(data, refusal(data), SOURCE)
    [datagram] = layer.datagrams_to_send()
    assert datagram.address == SOURCE  # rport: where it came from
    assert datagram.data.startswith(b"SIP/2.0 400 Bad Request: control character 0x00")


def test_without_rport_the_layer_answers_the_via_port_at_the_source_host() -> None:
    layer = TransactionLayer(TimerConfig())
    data = request(Via="Via: SIP/2.0/UDP 192.0.2.99:5070;branch=z9hG4bKbad2",
                   To="To: <sip:robot@example.com>\x7f")
    layer.reject_malformed(data, refusal(data), SOURCE)
    [datagram] = layer.datagrams_to_send()
    assert datagram.address == (SOURCE[0], 5070)


def test_the_layer_drops_what_cannot_be_answered() -> None:
    layer = TransactionLayer(TimerConfig())
    data = request(Via="Via: SIP/2.0/UDP 198.51.100.7\x00;branch=z9hG4bKbad3")
    layer.reject_malformed(data, refusal(data), SOURCE)
    assert layer.datagrams_to_send() == []
    assert len(layer) == 0  # stateless: no transaction kept for it
