"""RFC 3261 §12 dialogs from real INVITE / 2xx pairs, through record-routing proxies."""

from telephony.sip.dialog import Dialog
from telephony.sip.message import Request, Response, parse_message
from telephony.sip.uri import parse_address, parse_uri

OUR_VIA = "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnext;rport"


def wire(*lines: str) -> bytes:
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


def parse_request(data: bytes) -> Request:
    parsed = parse_message(data)
    assert isinstance(parsed, Request)
    return parsed


def parse_response(data: bytes) -> Response:
    parsed = parse_message(data)
    assert isinstance(parsed, Response)
    return parsed


# We call bob through two record-routing proxies (RFC 3665 3.2-style).
OUR_INVITE = parse_request(
    wire(
        "INVITE sip:bob@biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK74bf9;rport",
        "Route: <sip:ss1.atlanta.example.com;lr>",
        "Max-Forwards: 70",
        'From: "Ringback" <sip:ringback@atlanta.example.com>;tag=9fxced76sl',
        "To: Bob <sip:bob@biloxi.example.com>",
        "Call-ID: 3848276298220188511@atlanta.example.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:ringback@192.0.2.10:5062>",
    )
)

BOBS_200 = parse_response(
    wire(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK74bf9;rport=5062;received=192.0.2.10",
        "Record-Route: <sip:ss2.biloxi.example.com;lr>",
        "Record-Route: <sip:ss1.atlanta.example.com;lr>",
        'From: "Ringback" <sip:ringback@atlanta.example.com>;tag=9fxced76sl',
        "To: Bob <sip:bob@biloxi.example.com>;tag=314159",
        "Call-ID: 3848276298220188511@atlanta.example.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:bob@192.0.2.4;transport=udp>",
    )
)

# Alice calls us through the same two proxies; Kamailio writes both Record-Routes on one line.
THEIR_INVITE = parse_request(
    wire(
        "INVITE sip:ringback@192.0.2.10:5062 SIP/2.0",
        "Via: SIP/2.0/UDP ss2.biloxi.example.com:5060;branch=z9hG4bK721e4.1",
        "Via: SIP/2.0/UDP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8;received=192.0.2.101",
        "Max-Forwards: 68",
        "Record-Route: <sip:ss2.biloxi.example.com;lr>, <sip:ss1.atlanta.example.com;lr>",
        "To: <sip:ringback@biloxi.example.com>",
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        "CSeq: 77 INVITE",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
    )
)


def uac_dialog() -> Dialog:
    return Dialog.from_uac(OUR_INVITE, BOBS_200)


def uas_dialog() -> Dialog:
    return Dialog.from_uas(THEIR_INVITE, "ourtag")


def route_uris(request: Request) -> list[str]:
    return [str(parse_address(route).uri) for route in request.headers.get_all("Route")]


# --- UAC -----------------------------------------------------------------------------------------


def test_uac_dialog_state() -> None:
    dialog = uac_dialog()
    assert dialog.call_id == "3848276298220188511@atlanta.example.com"
    assert dialog.local_tag == "9fxced76sl"
    assert dialog.remote_tag == "314159"
    assert dialog.key == ("3848276298220188511@atlanta.example.com", "9fxced76sl", "314159")
    # RFC 3261 12.1.2: the Record-Route of the response, in reverse order.
    assert dialog.route_set == [
        "<sip:ss1.atlanta.example.com;lr>",
        "<sip:ss2.biloxi.example.com;lr>",
    ]
    assert dialog.remote_target == parse_uri("sip:bob@192.0.2.4;transport=udp")
    assert dialog.local_seq == 314159
    assert dialog.remote_seq is None
    assert parse_address(dialog.local_address).tag == "9fxced76sl"
    assert parse_address(dialog.remote_address).tag == "314159"
    assert parse_address(dialog.remote_address).display_name == "Bob"


def test_uac_in_dialog_bye_with_loose_routing() -> None:
    dialog = uac_dialog()
    bye = dialog.new_request("BYE", OUR_VIA)
    assert bye.method == "BYE"
    assert bye.uri == "sip:bob@192.0.2.4;transport=udp"  # the remote target
    assert route_uris(bye) == ["sip:ss1.atlanta.example.com;lr", "sip:ss2.biloxi.example.com;lr"]
    assert bye.cseq == (314160, "BYE")
    assert dialog.local_seq == 314160
    assert bye.from_address.tag == "9fxced76sl"
    assert bye.from_address.uri == OUR_INVITE.from_address.uri
    assert bye.to_address.tag == "314159"
    assert bye.to_address.uri == OUR_INVITE.to_address.uri
    assert bye.call_id == dialog.call_id
    assert bye.headers.get("Via") == OUR_VIA
    assert bye.headers.get("Max-Forwards") == "70"
    assert dialog.next_hop() == parse_uri("sip:ss1.atlanta.example.com;lr")
    # It goes on the wire and comes back the same.
    again = parse_request(bye.to_bytes())
    assert (again.method, again.uri, again.cseq) == (bye.method, bye.uri, bye.cseq)
    assert route_uris(again) == route_uris(bye)


def test_local_cseq_increases_per_request_but_not_for_the_ack() -> None:
    dialog = uac_dialog()
    ack = dialog.new_request("ACK", OUR_VIA, cseq=OUR_INVITE.cseq[0])
    assert ack.cseq == (314159, "ACK")  # RFC 3261 13.2.2.4: the INVITE's number
    assert dialog.local_seq == 314159
    info = dialog.new_request(
        "INFO",
        OUR_VIA,
        extra_headers=[("Content-Type", "application/dtmf-relay")],
        body=b"Signal=5\r\nDuration=160\r\n",
    )
    reinvite = dialog.new_request("INVITE", OUR_VIA)
    bye = dialog.new_request("BYE", OUR_VIA)
    assert [info.cseq[0], reinvite.cseq[0], bye.cseq[0]] == [314160, 314161, 314162]
    assert info.headers.get("Content-Type") == "application/dtmf-relay"
    assert parse_request(info.to_bytes()).body == b"Signal=5\r\nDuration=160\r\n"


def test_uac_dialog_without_record_route_goes_straight_to_the_contact() -> None:
    ok = parse_response(
        wire(
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK74bf9",
            'From: "Ringback" <sip:ringback@atlanta.example.com>;tag=9fxced76sl',
            "To: <sip:bob@biloxi.example.com>;tag=b",
            "Call-ID: 3848276298220188511@atlanta.example.com",
            "CSeq: 314159 INVITE",
            "Contact: <sip:bob@[2001:db8::4]:5070>",
        )
    )
    dialog = Dialog.from_uac(OUR_INVITE, ok)
    assert dialog.route_set == []
    assert dialog.next_hop().host_port == ("2001:db8::4", 5070)
    bye = dialog.new_request("BYE", OUR_VIA)
    assert bye.uri == "sip:bob@[2001:db8::4]:5070"
    assert "Route" not in bye.headers  # the INVITE's pre-loaded Route is not the route set


def test_uac_dialog_without_contact_falls_back_to_the_request_uri() -> None:
    ok = parse_response(
        BOBS_200.to_bytes().replace(b"Contact: <sip:bob@192.0.2.4;transport=udp>\r\n", b"")
    )
    assert "Contact" not in ok.headers
    assert Dialog.from_uac(OUR_INVITE, ok).remote_target == parse_uri(OUR_INVITE.uri)


def test_early_dialog_from_a_tagged_provisional() -> None:
    ringing = parse_response(BOBS_200.to_bytes().replace(b"SIP/2.0 200 OK", b"SIP/2.0 180 Ringing"))
    early = Dialog.from_uac(OUR_INVITE, ringing)
    assert early.remote_tag == "314159"
    assert early.route_set == uac_dialog().route_set


# --- UAS -----------------------------------------------------------------------------------------


def test_uas_dialog_state() -> None:
    dialog = uas_dialog()
    assert dialog.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert dialog.local_tag == "ourtag"
    assert dialog.remote_tag == "1928301774"
    # RFC 3261 12.1.1: the Record-Route of the request, in the same order.
    assert dialog.route_set == [
        "<sip:ss2.biloxi.example.com;lr>",
        "<sip:ss1.atlanta.example.com;lr>",
    ]
    assert dialog.remote_target == parse_uri("sip:alice@pc33.atlanta.example.com")
    assert dialog.remote_seq == 77
    assert parse_address(dialog.local_address).tag == "ourtag"
    assert parse_address(dialog.local_address).uri == THEIR_INVITE.to_address.uri
    assert parse_address(dialog.remote_address) == THEIR_INVITE.from_address


def test_uas_sends_bye_back_along_the_route() -> None:
    dialog = uas_dialog()
    bye = dialog.new_request("BYE", OUR_VIA)
    assert bye.uri == "sip:alice@pc33.atlanta.example.com"
    assert route_uris(bye) == ["sip:ss2.biloxi.example.com;lr", "sip:ss1.atlanta.example.com;lr"]
    assert bye.cseq == (1, "BYE")  # our own sequence starts fresh
    assert bye.from_address.tag == "ourtag"
    assert bye.from_address.uri == THEIR_INVITE.to_address.uri
    assert bye.to_address.tag == "1928301774"
    assert bye.to_address.display_name == "Alice"
    assert dialog.next_hop() == parse_uri("sip:ss2.biloxi.example.com;lr")


def test_uas_dialog_without_contact_uses_the_from_uri() -> None:
    invite = parse_request(
        THEIR_INVITE.to_bytes().replace(b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n", b"")
    )
    assert Dialog.from_uas(invite, "t").remote_target == invite.from_address.uri


def test_remote_cseq_ordering() -> None:
    dialog = uas_dialog()
    assert not dialog.accepts_remote_seq(76)  # lower: out of order, answer 500
    assert dialog.remote_seq == 77
    assert dialog.accepts_remote_seq(77)  # e.g. the INVITE's own CANCEL or ACK numbers
    assert dialog.accepts_remote_seq(78)
    assert not dialog.accepts_remote_seq(77)
    assert dialog.accepts_remote_seq(1000)  # gaps are fine
    assert dialog.remote_seq == 1000

    uac = uac_dialog()
    assert uac.remote_seq is None
    assert uac.accepts_remote_seq(5)  # the first request from the far end sets it
    assert uac.remote_seq == 5
    assert not uac.accepts_remote_seq(4)


def test_update_target_follows_a_reinvite_contact() -> None:
    dialog = uac_dialog()
    reinvite = parse_request(
        wire(
            "INVITE sip:ringback@192.0.2.10:5062 SIP/2.0",
            "Via: SIP/2.0/UDP ss1.atlanta.example.com;branch=z9hG4bKre",
            "From: Bob <sip:bob@biloxi.example.com>;tag=314159",
            'To: "Ringback" <sip:ringback@atlanta.example.com>;tag=9fxced76sl',
            "Call-ID: 3848276298220188511@atlanta.example.com",
            "CSeq: 2 INVITE",
            "Contact: <sip:bob@192.0.2.44:5080>",
        )
    )
    dialog.update_target(reinvite)
    assert dialog.remote_target == parse_uri("sip:bob@192.0.2.44:5080")
    assert dialog.route_set == uac_dialog().route_set  # the route set never changes (12.2)
    assert dialog.new_request("BYE", OUR_VIA).uri == "sip:bob@192.0.2.44:5080"

    no_contact = parse_request(
        reinvite.to_bytes().replace(b"Contact: <sip:bob@192.0.2.44:5080>\r\n", b"")
    )
    dialog.update_target(no_contact)
    assert dialog.remote_target == parse_uri("sip:bob@192.0.2.44:5080")


# --- strict routing ------------------------------------------------------------------------------


def test_strict_router_first_in_the_route_set() -> None:
    """RFC 3261 12.2.1.1: the strict router goes in the Request-URI, the target last in Route."""
    ok = parse_response(  # the proxy nearest to us is an RFC 2543 strict router
        BOBS_200.to_bytes().replace(
            b"Record-Route: <sip:ss1.atlanta.example.com;lr>",
            b"Record-Route: <sip:old.example.com;maddr=192.0.2.99>",
        )
    )
    dialog = Dialog.from_uac(OUR_INVITE, ok)
    assert dialog.route_set == [
        "<sip:old.example.com;maddr=192.0.2.99>",
        "<sip:ss2.biloxi.example.com;lr>",
    ]
    bye = dialog.new_request("BYE", OUR_VIA)
    assert bye.uri == "sip:old.example.com;maddr=192.0.2.99"
    assert route_uris(bye) == ["sip:ss2.biloxi.example.com;lr", "sip:bob@192.0.2.4;transport=udp"]
    assert dialog.next_hop() == parse_uri("sip:old.example.com;maddr=192.0.2.99")
    assert dialog.route_set[0] == "<sip:old.example.com;maddr=192.0.2.99>"  # not consumed
    assert parse_request(bye.to_bytes()).uri == bye.uri


def test_strict_router_alone() -> None:
    dialog = uas_dialog()
    dialog.route_set = ["<sip:strict.example.com>"]
    bye = dialog.new_request("BYE", OUR_VIA)
    assert bye.uri == "sip:strict.example.com"
    assert route_uris(bye) == ["sip:alice@pc33.atlanta.example.com"]


def test_loose_router_later_in_the_route_set_does_not_matter() -> None:
    dialog = uas_dialog()
    dialog.route_set = ["<sip:loose.example.com;lr>", "<sip:strict.example.com>"]
    bye = dialog.new_request("BYE", OUR_VIA)
    assert bye.uri == "sip:alice@pc33.atlanta.example.com"
    assert route_uris(bye) == ["sip:loose.example.com;lr", "sip:strict.example.com"]
