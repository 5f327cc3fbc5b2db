"""The SIP parser and serialiser against messages as real peers send them (and RFC 4475 abuse)."""

import contextlib
import random

import pytest

from telephony.sip.errors import MessageTooLarge, SipParseError
from telephony.sip.headers import Headers, canonical_name, split_list
from telephony.sip.message import (
    MAX_HEADER_FIELDS,
    MAX_HEADER_LINE_BYTES,
    MAX_MESSAGE_BYTES,
    Message,
    Request,
    Response,
    make_response,
    parse_cseq,
    parse_message,
)
from telephony.sip.uri import Address, SipUri, Via, parse_address, parse_uri, parse_via

SDP = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 198.51.100.7\r\n"
    b"s=Asterisk\r\n"
    b"c=IN IP4 198.51.100.7\r\n"
    b"t=0 0\r\n"
    b"m=audio 17234 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)


def wire(*lines: str, body: bytes = b"", content_length: bool = True) -> bytes:
    """A datagram from header lines; Content-Length appended unless told otherwise."""
    head = list(lines)
    if content_length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# An INVITE from Asterisk, as Kamailio forwards it to us: record-routed, two Vias.
KAMAILIO_INVITE = wire(
    "INVITE sip:ringback@192.0.2.10:5062 SIP/2.0",
    "Record-Route: <sip:192.0.2.1;lr;ftag=as6d1c0e3f;did=1a2.b3c1>",
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKcydzigwkX",
    "Via: SIP/2.0/UDP 198.51.100.7:5060;received=198.51.100.7;rport=5060;branch=z9hG4bK0a1b2c3d",
    "Max-Forwards: 69",
    'From: "Alice, from Sales" <sip:alice@example.com>;tag=as6d1c0e3f',
    "To: <sip:ringback@example.com>",
    "Contact: <sip:alice@198.51.100.7:5060>",
    "Call-ID: 3c26700f5a1d-2xq0mj6fc4h1@198.51.100.7",
    "CSeq: 102 INVITE",
    "User-Agent: Asterisk PBX 20.5.0",
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE",
    "Supported: replaces, timer",
    "Content-Type: application/sdp",
    body=SDP,
)

# sipp's stock uac scenario: unquoted display names, an addr-spec Contact, padded Content-Length.
SIPP_INVITE = (
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4711-1-0\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=4711SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5060>\r\n"
    "Call-ID: 1-4711@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length:   {len(SDP)}\r\n"
    "\r\n"
).encode() + SDP

# baresip answering through Kamailio, with our rport filled in.
BARESIP_200 = wire(
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKa1b2c3;rport=5062;received=192.0.2.10",
    "Record-Route: <sip:192.0.2.1;lr>",
    "Contact: <sip:bob-0x55d1@192.0.2.20:5060;transport=udp>",
    "From: <sip:ringback@example.com>;tag=9fxced76sl",
    "To: <sip:bob@example.com>;tag=4f8b7f2e5a19ad7c",
    "Call-ID: a84b4c76e66710@192.0.2.10",
    "CSeq: 1 INVITE",
    "Server: baresip v3.10.1 (x86_64/linux)",
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER",
    "Supported: replaces,norefersub,100rel",
    "Content-Type: application/sdp",
    body=SDP,
)

# Asterisk (pjsip) qualifying us: a bare `rport` flag, no body.
ASTERISK_OPTIONS = wire(
    "OPTIONS sip:ringback@192.0.2.10:5062 SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.30:5060;rport;branch=z9hG4bKPj5e0a9c1e-7d2b",
    "From: <sip:asterisk@192.0.2.30>;tag=1f5d3c2a-0b3e",
    "To: <sip:ringback@192.0.2.10>",
    "Contact: <sip:asterisk@192.0.2.30:5060>",
    "Call-ID: 6e1c3b0f-4f1d-4a7a-9f65-2f3b1d2c4e5f",
    "CSeq: 33297 OPTIONS",
    "Max-Forwards: 70",
    "User-Agent: Asterisk PBX 20.5.0",
)

KAMAILIO_407 = wire(
    "SIP/2.0 407 Proxy Authentication Required",
    "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKf00;rport=5062",
    "From: <sip:ringback@example.com>;tag=abc",
    "To: <sip:bob@example.com>;tag=b27e1a1d33761e85846fc98f5f3a7e58.0d3c",
    "Call-ID: x1@192.0.2.10",
    "CSeq: 1 INVITE",
    'Proxy-Authenticate: Digest realm="example.com", nonce="ZmJ2Y2E1:1f2e", qop="auth"',
    "Server: kamailio (5.8.2 (x86_64/linux))",
)

REAL_WORLD = [KAMAILIO_INVITE, SIPP_INVITE, BARESIP_200, ASTERISK_OPTIONS, KAMAILIO_407]


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def minimal_request(*extra: str, method: str = "OPTIONS", body: bytes = b"") -> bytes:
    return wire(
        f"{method} sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKmin",
        "From: <sip:alice@example.com>;tag=a",
        "To: <sip:bob@example.com>",
        "Call-ID: minimal@192.0.2.1",
        f"CSeq: 1 {method}",
        *extra,
        body=body,
    )


# --- real peers ----------------------------------------------------------------------------------


def test_kamailio_forwarded_invite() -> None:
    invite = request(KAMAILIO_INVITE)
    assert invite.method == "INVITE"
    assert invite.uri == "sip:ringback@192.0.2.10:5062"
    assert invite.call_id == "3c26700f5a1d-2xq0mj6fc4h1@198.51.100.7"
    assert invite.cseq == (102, "INVITE")
    assert invite.body == SDP
    assert invite.top_via == Via("UDP", "192.0.2.1", None, {"branch": "z9hG4bKcydzigwkX"})
    vias = [parse_via(v) for v in invite.headers.get_all("Via")]
    assert [v.host for v in vias] == ["192.0.2.1", "198.51.100.7"]
    assert vias[1].params == {
        "received": "198.51.100.7",
        "rport": "5060",
        "branch": "z9hG4bK0a1b2c3d",
    }
    assert invite.from_address.display_name == "Alice, from Sales"
    assert invite.from_address.tag == "as6d1c0e3f"
    assert invite.to_address.tag is None
    record_route = parse_address(invite.headers.get_all("Record-Route")[0])
    assert record_route.uri.is_loose_router
    assert record_route.uri.params["did"] == "1a2.b3c1"
    assert invite.headers.get_all("Allow")[:3] == ["INVITE", "ACK", "CANCEL"]
    assert len(invite.headers.get_all("Allow")) == 11
    assert invite.headers.get_all("Supported") == ["replaces", "timer"]


def test_sipp_invite_with_addr_spec_contact_and_token_display_names() -> None:
    invite = request(SIPP_INVITE)
    assert invite.from_address == Address(
        uri=SipUri(host="127.0.0.1", user="sipp", port=5061),
        display_name="sipp",
        params={"tag": "4711SIPpTag001"},
    )
    assert invite.to_address.display_name == "service"
    contact = parse_address(invite.headers.get("Contact") or "")
    assert contact.uri == SipUri(host="127.0.0.1", user="sipp", port=5061)
    assert contact.display_name is None
    assert invite.headers.get("Subject") == "Performance Test"
    assert invite.body == SDP


def test_baresip_200_ok() -> None:
    ok = response(BARESIP_200)
    assert (ok.status, ok.reason) == (200, "OK")
    assert ok.cseq == (1, "INVITE")
    assert ok.to_address.tag == "4f8b7f2e5a19ad7c"
    assert ok.top_via.params["received"] == "192.0.2.10"
    assert ok.headers.get_all("Supported") == ["replaces", "norefersub", "100rel"]
    assert parse_address(ok.headers.get("Contact") or "").uri.params == {"transport": "udp"}


def test_asterisk_options_with_bare_rport_and_empty_body() -> None:
    options = request(ASTERISK_OPTIONS)
    assert options.cseq == (33297, "OPTIONS")
    assert options.top_via.params == {"rport": None, "branch": "z9hG4bKPj5e0a9c1e-7d2b"}
    assert options.body == b""


def test_kamailio_407_keeps_the_challenge_whole() -> None:
    challenge = response(KAMAILIO_407)
    assert challenge.status == 407
    assert challenge.reason == "Proxy Authentication Required"
    # Not a list header: the commas inside the challenge must not split it.
    assert challenge.headers.get_all("Proxy-Authenticate") == [
        'Digest realm="example.com", nonce="ZmJ2Y2E1:1f2e", qop="auth"'
    ]


# --- header names and values ---------------------------------------------------------------------


def test_compact_header_forms_are_expanded() -> None:
    data = wire(
        "INVITE sip:bob@example.com SIP/2.0",
        "v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcompact",
        "f: Alice <sip:alice@example.com>;tag=1",
        "t: Bob <sip:bob@example.com>",
        "i: compact@192.0.2.1",
        "m: <sip:alice@192.0.2.1>",
        "k: timer, 100rel",
        "s: compact forms",
        "c: application/sdp",
        "CSeq: 7 INVITE",
        f"l: {len(SDP)}",
        body=SDP,
        content_length=False,
    )
    invite = request(data)
    assert [name for name, _ in invite.headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "Contact",
        "Supported",
        "Subject",
        "Content-Type",
        "CSeq",
        "Content-Length",
    ]
    assert invite.call_id == "compact@192.0.2.1"
    assert invite.headers.get_all("Supported") == ["timer", "100rel"]
    assert invite.headers.get("Content-Type") == "application/sdp"
    assert invite.body == SDP


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("VIA", "Via"),
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("cseq", "CSeq"),
        ("content-TYPE", "Content-Type"),
        ("www-authenticate", "WWW-Authenticate"),
        ("record-route", "Record-Route"),
        ("X-Custom-Header", "X-Custom-Header"),
        ("l", "Content-Length"),
        ("I", "Call-ID"),
        (" To ", "To"),
    ],
)
def test_header_names_are_case_insensitive(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical
    headers = Headers([(written, "value")])
    assert canonical in headers
    assert written.strip().upper() in headers
    assert headers.get(canonical.lower()) == "value"


def test_mixed_case_names_on_the_wire() -> None:
    data = wire(
        "BYE sip:bob@192.0.2.20 SIP/2.0",
        "VIA: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKcase",
        "from: <sip:alice@example.com>;tag=1",
        "tO: <sip:bob@example.com>;tag=2",
        "CALL-id: case@x",
        "cSeQ: 3 BYE",
        "content-length: 0",
        content_length=False,
    )
    bye = request(data)
    assert bye.cseq == (3, "BYE")
    assert bye.call_id == "case@x"
    assert bye.to_address.tag == "2"


def test_folded_header_lines_are_joined() -> None:
    data = wire(
        "OPTIONS sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfold",
        "From: <sip:alice@example.com>",
        "  ;tag=folded",
        "To: <sip:bob@example.com>",
        "Call-ID: fold@x",
        "CSeq: 0009",
        "\t OPTIONS",
        "Subject: first part",
        "    second part",
        "\tthird part",
    )
    options = request(data)
    assert options.from_address.tag == "folded"
    assert options.cseq == (9, "OPTIONS")
    assert options.headers.get("Subject") == "first part second part third part"
    assert len(options.headers) == 7


def test_rfc4475_whitespace_torture_invite() -> None:
    """In the spirit of RFC 4475 3.1.1.1 (wsinv): legal but unusual white space everywhere."""
    body = b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\n"
    head = (
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
        "TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
        'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
        "  ;\r\n  tag = 98asjd8\r\n"
        "MaX-fOrWaRdS: 0068\r\n"
        "Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
        f"Content-Length   : {len(body)}\r\n"
        "cseq: 0009\r\n  INVITE\r\n"
        "Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
        "s :\r\n"
        "NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
        "UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
        "Content-Type: application/sdp\r\n"
        "Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
        "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
        "  branch  =   z9hG4bK9ikj8  ,\r\n"
        " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
        " z9hG4bK30239\r\n"
        'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
        "      newvalue ;\r\n"
        "  secondparam ; q = 0.33\r\n"
        "\r\n"
    )
    invite = request(head.encode() + body)
    assert invite.method == "INVITE"
    assert invite.cseq == (9, "INVITE")
    assert invite.to_address.tag == "1918181833n"
    assert invite.to_address.uri.user == "vivekg"
    assert invite.from_address.display_name == 'J Rosenberg \\"'
    assert invite.from_address.tag == "98asjd8"
    assert invite.headers.get("Max-Forwards") == "0068"
    assert invite.headers.get("Subject") == ""
    assert invite.headers.get("Newfangledheader") == "newfangled value continued newfangled value"
    assert invite.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    vias = [parse_via(v) for v in invite.headers.get_all("Via")]
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    route = parse_address(invite.headers.get("Route") or "")
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    contact = parse_address(invite.headers.get("Contact") or "")
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert invite.body == body


def test_comma_joined_and_repeated_list_headers_keep_their_order() -> None:
    data = wire(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2",
        "Via: SIP/2.0/UDP c.example.com:5070;branch=z9hG4bK3",
        "Record-Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>",
        "Record-Route: <sip:p3.example.com;lr>",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>;tag=2",
        "Call-ID: lists@x",
        "CSeq: 1 INVITE",
    )
    ok = response(data)
    assert [parse_via(v).host for v in ok.headers.get_all("Via")] == [
        "a.example.com",
        "b.example.com",
        "c.example.com",
    ]
    assert ok.top_via.branch == "z9hG4bK1"
    assert ok.headers.get_all("Record-Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]


def test_contact_list_with_quoted_commas_and_angle_commas() -> None:
    values = split_list(
        '"Smith, John" <sip:john@a.example.com>;q=0.7, '
        '<sip:john@b.example.com;x=1,2>, "Quote \\" , inside" <sip:j@c.example.com>,'
    )
    assert values == [
        '"Smith, John" <sip:john@a.example.com>;q=0.7',
        "<sip:john@b.example.com;x=1,2>",
        '"Quote \\" , inside" <sip:j@c.example.com>',
    ]
    assert parse_address(values[0]).display_name == "Smith, John"
    assert parse_address(values[2]).display_name == 'Quote " , inside'


def test_non_list_header_is_never_split() -> None:
    headers = Headers([("Subject", "one, two"), ("Date", "Sat, 13 Nov 2010 23:29:00 GMT")])
    assert headers.get_all("Subject") == ["one, two"]
    assert headers.get("Date") == "Sat, 13 Nov 2010 23:29:00 GMT"


def test_headers_set_replaces_in_place() -> None:
    headers = Headers([("Via", "a"), ("Max-Forwards", "70"), ("via", "b"), ("To", "t")])
    headers.set("Max-Forwards", "69")
    headers.set("VIA", "c")
    headers.set("Subject", "new")
    assert list(headers) == [("Via", "c"), ("Max-Forwards", "69"), ("To", "t"), ("Subject", "new")]
    headers.remove("to")
    assert "To" not in headers
    clone = headers.copy()
    clone.add("X", "1")
    assert "X" not in headers


# --- addresses, URIs, Vias -----------------------------------------------------------------------


def test_escaped_uris_stay_escaped() -> None:
    """RFC 4475 3.1.1.2/3.1.1.3: escapes and unusual user characters in URIs."""
    uri = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert (uri.user, uri.host) == ("sips%3Auser%40example.com", "example.net")
    odd = parse_uri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com")
    assert odd.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert odd.host == "example.com"
    assert odd.params == {}
    assert str(odd) == "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"


def test_uri_with_every_part() -> None:
    uri = parse_uri("SIPS:Alice:secret@Atlanta.Example.COM:5061;transport=tcp;lr?subject=hi")
    assert uri == SipUri(
        host="atlanta.example.com",
        user="Alice",
        port=5061,
        scheme="sips",
        password="secret",
        params={"transport": "tcp", "lr": None},
        headers="subject=hi",
    )
    assert uri.is_loose_router
    assert str(uri) == "sips:Alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi"
    assert parse_uri(str(uri)) == uri
    assert uri.with_params(maddr="192.0.2.1").params["maddr"] == "192.0.2.1"


def test_telephone_user_with_semicolon_parameters() -> None:
    uri = parse_uri("sip:+15551234567;phone-context=example.com@gw.example.com;user=phone")
    assert uri.user == "+15551234567;phone-context=example.com"
    assert uri.host == "gw.example.com"
    assert uri.params == {"user": "phone"}


def test_ipv6_hosts() -> None:
    uri = parse_uri("sip:alice@[2001:db8::10]:5070")
    assert uri.host == "[2001:db8::10]"
    assert uri.port == 5070
    assert uri.host_port == ("2001:db8::10", 5070)
    assert parse_uri("sip:[::1]").host_port == ("::1", 5060)
    via = parse_via(
        "SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKas3-111;received=[2001:db8::9:255]"
    )
    assert (via.host, via.port) == ("[2001:db8::9:1]", 5060)
    assert via.params["received"] == "[2001:db8::9:255]"
    data = wire(
        "OPTIONS sip:[2001:db8::10] SIP/2.0",
        "Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bKv6",
        "From: <sip:alice@[::1]>;tag=1",
        "To: <sip:[2001:db8::10]>",
        "Call-ID: v6@[::1]",
        "CSeq: 1 OPTIONS",
    )
    options = request(data)
    assert options.top_via.host == "[::1]"
    assert options.from_address.uri.host_port == ("::1", 5060)


@pytest.mark.parametrize(
    "text",
    [
        "http://example.com",
        "sip:",
        "sip:alice@",
        "sip:example.com:0",
        "sip:example.com:65536",
        "sip:example.com:50x",
        "sip:example.com:\u00b2",
        "sip:example.com:" + "1" * 5000,
        "sip:[2001:db8::1",
        "sip:[2001:db8::1]x",
        "tel:+15551234567",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ('"Bob" <sip:bob@h>;tag=x', "Bob", "sip:bob@h", {"tag": "x"}),
        ('"caller"<sip:caller@example.com>;tag=323', "caller", "sip:caller@example.com", {}),
        ("Bob Smith <sip:bob@h>", "Bob Smith", "sip:bob@h", {}),
        ("<sip:bob@h;transport=udp>;expires=60", None, "sip:bob@h;transport=udp", {}),
        ("sip:bob@h;tag=x", None, "sip:bob@h", {"tag": "x"}),
        ('"a <b>, c" <sip:c@h>', "a <b>, c", "sip:c@h", {}),
        ('"back\\\\slash \\"q\\"" <sip:q@h>', 'back\\slash "q"', "sip:q@h", {}),
        ('"" <sip:anon@anonymous.invalid>', "", "sip:anon@anonymous.invalid", {}),
    ],
)
def test_addresses(text: str, display: str | None, uri: str, params: dict[str, str | None]) -> None:
    address = parse_address(text)
    assert address.display_name == display
    assert str(address.uri) == uri
    if params:
        assert address.params == params
    again = parse_address(str(address))
    assert (again.uri, again.params) == (address.uri, address.params)
    assert (again.display_name or None) == (address.display_name or None)  # "" is no name


def test_address_display_name_is_quoted_and_escaped_on_output() -> None:
    address = Address(uri=parse_uri("sip:a@h"), display_name='He said "hi" \\o/')
    assert str(address) == '"He said \\"hi\\" \\\\o/" <sip:a@h>'
    assert parse_address(str(address)) == address
    assert str(address.with_tag("t1")) == '"He said \\"hi\\" \\\\o/" <sip:a@h>;tag=t1'


@pytest.mark.parametrize(
    ("text", "via"),
    [
        ("SIP/2.0/UDP host.example.com", Via("UDP", "host.example.com", None)),
        (
            "sip/2.0/udp 192.0.2.1:5062;branch=z9hG4bKx",
            Via("UDP", "192.0.2.1", 5062, {"branch": "z9hG4bKx"}),
        ),
        (
            "SIP / 2.0 / TCP  host : 5070 ; branch = z9hG4bKy",
            Via("TCP", "host", 5070, {"branch": "z9hG4bKy"}),
        ),
        (
            "SIP/2.0/UDP 10.0.0.1;rport;received=203.0.113.9",
            Via("UDP", "10.0.0.1", None, {"rport": None, "received": "203.0.113.9"}),
        ),
    ],
)
def test_vias(text: str, via: Via) -> None:
    assert parse_via(text) == via
    assert parse_via(str(via)) == via


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/3.0/UDP host",
        "SIP/2.0 host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDPhost",
        "SIP/2.0/UDP host:port",
        "SIP/2.0/UDP two hosts",
    ],
)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


# --- bodies and Content-Length -------------------------------------------------------------------


def test_content_length_governs_the_body_extra_bytes_are_dropped() -> None:
    data = minimal_request("Content-Type: text/plain", body=b"hello") + b"garbage after"
    assert request(data).body == b"hello"


def test_body_shorter_than_content_length_is_an_error() -> None:
    data = minimal_request("Content-Type: text/plain", body=b"hello")[:-2]
    with pytest.raises(SipParseError):
        parse_message(data)


def test_missing_content_length_on_udp_means_the_rest_of_the_datagram() -> None:
    data = wire(
        "MESSAGE sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnolen",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>",
        "Call-ID: nolen@x",
        "CSeq: 1 MESSAGE",
        "Content-Type: text/plain",
        body=b"line one\r\n\r\nline two",
        content_length=False,
    )
    assert request(data).body == b"line one\r\n\r\nline two"


def test_binary_body_is_kept_as_bytes() -> None:
    body = bytes(range(256))
    assert (
        request(minimal_request("Content-Type: application/octet-stream", body=body)).body == body
    )


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "\u00b2", "\u0663", "1" * 5000, "0x10"])
def test_bad_content_length(value: str) -> None:
    data = wire(
        "OPTIONS sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKbadlen",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>",
        "Call-ID: badlen@x",
        "CSeq: 1 OPTIONS",
        f"Content-Length: {value}",
        body=b"xyz",
        content_length=False,
    )
    with pytest.raises(SipParseError):
        parse_message(data)


def test_leading_crlf_and_bare_lf_line_ends_are_accepted() -> None:
    data = b"\r\n\r\n" + minimal_request(body=b"").replace(b"\r\n", b"\n")
    assert request(data).cseq == (1, "OPTIONS")


def test_lf_headers_with_a_crlf_crlf_inside_the_body() -> None:
    body = b"a\r\n\r\nb"
    head = minimal_request("Content-Type: text/plain").replace(b"\r\n", b"\n")
    data = head.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode()) + body
    parsed = request(data)
    assert parsed.body == body
    assert parsed.headers.get("Content-Type") == "text/plain"


# --- limits --------------------------------------------------------------------------------------


def test_datagram_over_65535_bytes_is_too_large() -> None:
    base = minimal_request("Content-Type: text/plain", body=b"")
    padding = MAX_MESSAGE_BYTES - len(base) + 1
    data = minimal_request("Content-Type: text/plain", body=b"x" * padding)
    assert len(data) > MAX_MESSAGE_BYTES
    with pytest.raises(MessageTooLarge):
        parse_message(data)


def test_datagram_of_exactly_the_limit_is_accepted() -> None:
    size = 60_000
    data = minimal_request("Content-Type: text/plain", body=b"x" * size)
    data = minimal_request(
        "Content-Type: text/plain", body=b"x" * (size + MAX_MESSAGE_BYTES - len(data))
    )
    assert len(data) == MAX_MESSAGE_BYTES
    assert len(request(data).body) > size


def test_too_many_header_fields() -> None:
    ok = minimal_request(*(f"X-H{i}: {i}" for i in range(MAX_HEADER_FIELDS - 6)))
    assert len(request(ok).headers) == MAX_HEADER_FIELDS
    too_many = minimal_request(*(f"X-H{i}: {i}" for i in range(MAX_HEADER_FIELDS - 5)))
    with pytest.raises(MessageTooLarge):
        parse_message(too_many)


def test_header_line_too_long() -> None:
    ok = minimal_request("X-Long: " + "a" * (MAX_HEADER_LINE_BYTES - 8))
    assert request(ok).headers.get("X-Long") == "a" * (MAX_HEADER_LINE_BYTES - 8)
    too_long = minimal_request("X-Long: " + "a" * (MAX_HEADER_LINE_BYTES - 7))
    with pytest.raises(MessageTooLarge):
        parse_message(too_long)


def test_too_large_is_a_parse_error() -> None:
    assert issubclass(MessageTooLarge, SipParseError)


# --- malformed messages --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_header(missing: str) -> None:
    lines = [
        line
        for line in minimal_request().decode().split("\r\n")
        if not line.lower().startswith(missing.lower() + ":")
    ]
    with pytest.raises(SipParseError) as caught:
        parse_message("\r\n".join(lines).encode())
    assert not isinstance(caught.value, MessageTooLarge)


@pytest.mark.parametrize(
    "cseq",
    [
        "",
        "1",
        "INVITE",
        "abc OPTIONS",
        "-1 OPTIONS",
        "1 OPTIONS extra",
        "2147483648 OPTIONS",
        "1 OPTI@NS",
        "\u00b2 OPTIONS",
        "1" * 5000 + " OPTIONS",
        "2 INVITE",  # does not match the request's method
    ],
)
def test_bad_cseq(cseq: str) -> None:
    data = minimal_request().replace(b"CSeq: 1 OPTIONS", f"CSeq: {cseq}".encode())
    with pytest.raises(SipParseError):
        parse_message(data)


def test_cseq_values() -> None:
    assert parse_cseq("2147483647 INVITE") == (2147483647, "INVITE")
    assert parse_cseq("0 invite") == (0, "INVITE")
    assert parse_cseq("  12 \t BYE ") == (12, "BYE")


@pytest.mark.parametrize(
    "start_line",
    [
        "",
        "INVITE sip:bob@example.com",
        "INVITE sip:bob@example.com SIP/3.0",
        "INVITE  sip:bob@example.com SIP/2.0",
        "INVITE sip:bob@example.com SIP/2.0 extra",
        "INV@TE sip:bob@example.com SIP/2.0",
        "GET / HTTP/1.1",
        "SIP/2.0 2000 OK",
        "SIP/2.0 099 Too Early",
        "SIP/2.0 700 Too Late",
        "SIP/2.0 2\u00b20 Odd",
        "SIP/2.0 OK 200",
        "SIP/2.0",
    ],
)
def test_bad_start_line(start_line: str) -> None:
    lines = minimal_request().decode().split("\r\n")
    data = "\r\n".join([start_line, *lines[1:]]).encode()
    with pytest.raises(SipParseError):
        parse_message(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"\x00\xff\xfe" * 100,
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n",  # no empty line
        b"OPTIONS sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: \xff\xfe\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello
    ],
)
def test_garbage_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def _parses_or_rejects(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_message(data)


def test_random_bytes_only_ever_raise_parse_errors() -> None:
    rng = random.Random(4475)
    for _ in range(2000):
        _parses_or_rejects(rng.randbytes(rng.randrange(0, 300)))


def test_every_truncation_of_real_messages_parses_or_is_rejected() -> None:
    for data in REAL_WORLD:
        for end in range(len(data)):
            _parses_or_rejects(data[:end])


def test_mutated_real_messages_only_ever_raise_parse_errors() -> None:
    rng = random.Random(3261)
    alphabet = b' \t\r\n:;,<>"\\@[]?=/0123456789\xc2\xb2\xd9\xa3\x00\xffaZ-'
    for _ in range(3000):
        data = bytearray(rng.choice(REAL_WORLD))
        for _ in range(rng.randrange(1, 6)):
            position = rng.randrange(len(data))
            action = rng.randrange(3)
            if action == 0:
                data[position] = rng.choice(alphabet)
            elif action == 1:
                data[position:position] = bytes([rng.choice(alphabet)]) * rng.randrange(1, 4)
            else:
                del data[position : position + rng.randrange(1, 8)]
        message = None
        try:
            message = parse_message(bytes(data))
        except SipParseError:
            continue
        # Whatever parsed must be usable: its accessors and serialisation never blow up.
        message.cseq  # noqa: B018
        message.top_via  # noqa: B018
        parse_message(message.to_bytes())


# --- writing messages back -----------------------------------------------------------------------


def _semantics(message: Message) -> tuple[object, ...]:
    fields = [(n, v) for n, v in message.headers if n != "Content-Length"]
    if isinstance(message, Request):
        return ("request", message.method, message.uri, fields, message.body)
    return ("response", message.status, message.reason, fields, message.body)


@pytest.mark.parametrize("data", REAL_WORLD)
def test_round_trip(data: bytes) -> None:
    first = parse_message(data)
    written = first.to_bytes()
    second = parse_message(written)
    assert _semantics(second) == _semantics(first)
    assert second.headers.get("Content-Length") == str(len(first.body))
    assert second.to_bytes() == written


def test_round_trip_normalises_compact_and_folded_forms() -> None:
    data = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKrt\r\n"
        b"f: <sip:alice@example.com>\r\n ;tag=1\r\n"
        b"t: <sip:bob@example.com>\r\n"
        b"i: rt@x\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"\r\n"
    )
    written = parse_message(data).to_bytes()
    assert written.startswith(b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP ")
    assert b"From: <sip:alice@example.com> ;tag=1\r\n" in written
    assert written.endswith(b"Content-Length: 0\r\n\r\n")
    assert _semantics(parse_message(written)) == _semantics(parse_message(data))


def test_to_bytes_fixes_a_wrong_content_length() -> None:
    message = request(minimal_request("Content-Type: text/plain", body=b"abc"))
    message.body = b"longer body"
    assert request(message.to_bytes()).body == b"longer body"


def test_make_response_copies_the_transaction_headers() -> None:
    invite = request(KAMAILIO_INVITE)
    ringing = make_response(invite, 180, to_tag="ourtag")
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    assert ringing.headers.get_all("Via") == invite.headers.get_all("Via")
    assert ringing.headers.get("From") == invite.headers.get("From")
    assert ringing.call_id == invite.call_id
    assert ringing.cseq == (102, "INVITE")
    assert ringing.to_address.tag == "ourtag"
    assert ringing.to_address.uri == invite.to_address.uri
    assert "Record-Route" not in ringing.headers  # the TU adds it to dialog-creating responses
    parsed = response(ringing.to_bytes())
    assert _semantics(parsed) == _semantics(ringing)


def test_make_response_tags() -> None:
    invite = request(KAMAILIO_INVITE)
    assert make_response(invite, 100, to_tag="t").to_address.tag is None  # RFC 3261 17.2.1
    assert make_response(invite, 486).to_address.tag is None
    in_dialog = request(
        minimal_request().replace(
            b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=theirs"
        )
    )
    assert make_response(in_dialog, 200, to_tag="other").to_address.tag == "theirs"


def test_make_response_extras() -> None:
    options = request(ASTERISK_OPTIONS)
    answer = make_response(
        options,
        200,
        headers=[("Allow", "INVITE, ACK, BYE"), ("Content-Type", "application/sdp")],
        body=SDP,
    )
    assert answer.headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert answer.body == SDP
    assert make_response(options, 599).reason == "Unknown"
    assert make_response(options, 503, "Overloaded").reason == "Overloaded"
    assert response(answer.to_bytes()).body == SDP


def test_response_with_empty_reason_phrase() -> None:
    data = BARESIP_200.replace(b"SIP/2.0 200 OK\r\n", b"SIP/2.0 200 \r\n")
    assert response(data).reason == ""


def test_address_round_trip_property() -> None:
    """Any display name, tag and URI survive str() and parse_address() (seeded, no hypothesis)."""
    rng = random.Random(20)
    display_chars = "abcXYZ 0129,;:<>@\"\\'()[]?=%\u00e9\u4e2d"
    token_chars = "abcxyz0129-.!%*_+`'~"
    for _ in range(500):
        display = "".join(rng.choice(display_chars) for _ in range(rng.randrange(1, 20))).strip()
        user = "".join(rng.choice(token_chars) for _ in range(rng.randrange(1, 12)))
        host = rng.choice(["example.com", "192.0.2.7", "[2001:db8::1]"])
        port = rng.choice([None, 5060, 65535])
        params: dict[str, str | None] = rng.choice([{}, {"lr": None}, {"transport": "udp"}])
        uri = SipUri(host=host, user=user, port=port, params=params)
        tag = "".join(rng.choice(token_chars) for _ in range(rng.randrange(1, 10)))
        address = Address(uri=uri, display_name=display or None, params={"tag": tag})
        parsed = parse_address(str(address))
        assert parsed == address, str(address)
        header = Headers([("From", str(address))])
        assert parse_address(header.get("From") or "") == address
