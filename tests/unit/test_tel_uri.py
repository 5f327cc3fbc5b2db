"""RFC 3966 `tel:` URIs in From and To, and `tel:` targets dialled through the dial template."""

from pathlib import Path

import pytest

from api.call_command import dial_string
from infra.settings import Settings
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.endpoint import SipEndpoint
from telephony.sip.errors import CallError, SipParseError
from telephony.sip.message import Request, make_response, parse_message
from telephony.sip.stack import Stack
from telephony.sip.transaction import TimerConfig
from telephony.sip.uri import TelUri, parse_address, parse_tel_uri, parse_uri


@pytest.mark.parametrize(
    ("text", "phone", "params"),
    [
        ("tel:+79991234567", "+79991234567", {}),
        ("tel:+7-999-123-45-67", "+79991234567", {}),
        ("tel:+7(999)123.45.67", "+79991234567", {}),
        ("tel:+1-201-555-0123;ext=1234", "+12015550123", {"ext": "1234"}),
        ("tel:7042;phone-context=example.com", "7042", {"phone-context": "example.com"}),
        ("tel:863-1234;phone-context=+1-914-555", "8631234", {"phone-context": "+1-914-555"}),
        ("tel:*67;phone-context=pbx.example.org", "*67", {"phone-context": "pbx.example.org"}),
        ("tel:#31#;phone-context=+7", "#31#", {"phone-context": "+7"}),
        ("tel:0A1B;phone-context=example.com", "0A1B", {"phone-context": "example.com"}),
        ("tel:+358-555-1234567;postd=pp22;isub=1411", "+3585551234567",
         {"postd": "pp22", "isub": "1411"}),
        ("tel:+7999;rn=%2B7000;npdi", "+7999", {"rn": "%2B7000", "npdi": None}),
        ("TEL:+7999", "+7999", {}),
    ],
)
def test_tel_uris_parse_and_print_back(
    text: str, phone: str, params: dict[str, str | None]
) -> None:
    uri = parse_tel_uri(text)
    assert isinstance(uri, TelUri)
    assert uri.phone == phone
    assert uri.params == params
    assert str(uri) == "tel:" + text[4:]  # as it came (the scheme in lower case)


@pytest.mark.parametrize(
    "text",
    [
        "tel:",
        "tel:+",
        "tel:+-()",
        "tel:+7 999",
        "tel:+7999x",
        "tel:++7999",
        "tel:abcz;phone-context=example.com",
        "tel:+7999;ext=1 2",
        "tel:+7999;bad name=1",
        "tel:+7999;ext=",
        "tel:+7999;p=a\"b",
        "tel:+7999;p=%zz",
        "tel:+7999@example.com",
        "sip:+7999@example.com",
    ],
)
def test_bad_tel_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_tel_uri(text)


def test_routing_headers_still_need_a_sip_uri() -> None:
    with pytest.raises(SipParseError):
        parse_address("<tel:+79991234567>")  # a Contact or Route: nothing can be sent there
    with pytest.raises(SipParseError):
        parse_uri("tel:+79991234567")
    assert isinstance(parse_address("<tel:+79991234567>", allow_tel=True).uri, TelUri)


def test_a_tel_uri_names_no_host() -> None:
    with pytest.raises(CallError):
        parse_tel_uri("tel:+79991234567").host_port  # noqa: B018


@pytest.mark.parametrize(
    ("text", "display", "uri", "tag"),
    [
        ('"Ivan" <tel:+7-999-123-45-67>;tag=a1', "Ivan", "tel:+7-999-123-45-67", "a1"),
        ("<tel:7042;phone-context=example.com>", None, "tel:7042;phone-context=example.com", None),
        ("tel:+79991234567;tag=zz", None, "tel:+79991234567", "zz"),  # addr-spec: tag is ours
    ],
)
def test_tel_name_addrs(text: str, display: str | None, uri: str, tag: str | None) -> None:
    address = parse_address(text, allow_tel=True)
    assert (address.display_name, str(address.uri), address.tag) == (display, uri, tag)
    assert parse_address(str(address), allow_tel=True) == address


TRUNK_INVITE = (
    b"INVITE sip:robot@10.0.0.5 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKtel1\r\n"
    b'From: "Caller" <tel:+7-999-123-45-67>;tag=trunk1\r\n'
    b"To: <tel:7042;phone-context=example.com>\r\n"
    b"Call-ID: tel-1@10.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:+79991234567@10.0.0.1:5060;user=phone>\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_invite_with_tel_from_and_to_is_read() -> None:
    message = parse_message(TRUNK_INVITE)
    assert isinstance(message, Request)
    caller = message.from_address.uri
    assert isinstance(caller, TelUri) and caller.phone == "+79991234567"
    assert message.from_address.tag == "trunk1"
    assert str(message.to_address.uri) == "tel:7042;phone-context=example.com"


def test_our_response_carries_the_tel_uris_back_unchanged() -> None:
    request = parse_message(TRUNK_INVITE)
    assert isinstance(request, Request)
    response = make_response(request, 180, to_tag="ours")
    text = response.to_bytes().decode()
    assert 'From: "Caller" <tel:+7-999-123-45-67>;tag=trunk1\r\n' in text
    assert "To: <tel:7042;phone-context=example.com>;tag=ours\r\n" in text
    assert parse_message(response.to_bytes()).to_address.tag == "ours"


def test_a_response_with_tel_uris_is_read() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKtel2\r\n"
        b"From: <tel:+74950000000>;tag=ours\r\n"
        b"To: <tel:+7-999-123-45-67>;tag=theirs\r\n"
        b"Call-ID: tel-2@10.0.0.5\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    response = parse_message(data)
    assert response.to_address.tag == "theirs"
    assert str(response.from_address.uri) == "tel:+74950000000"


# --- dialling tel: targets -----------------------------------------------------------------------


def stack() -> Stack:
    endpoint = SipEndpoint("127.0.0.1", 5060, TimerConfig(), lambda *_: None, lambda _: None)
    return Stack(endpoint, SipAccount(user="robot", domain="pbx.example.com"), EngineConfig())


def test_the_engine_refuses_a_tel_target_instead_of_inventing_a_sip_uri() -> None:
    with pytest.raises(CallError, match="dial template"):
        stack().target_uri("tel:+79991234567")  # was sip:tel:+79991234567@pbx.example.com
    assert str(stack().target_uri("+79991234567")) == "sip:+79991234567@pbx.example.com"


@pytest.mark.parametrize(
    ("template", "target", "dialled"),
    [
        ("{phone}", "tel:+7-999-123-45-67", "+79991234567"),
        ("{digits}", "tel:+7-999-123-45-67", "79991234567"),
        ("8{digits}@gw.example", "tel:+7(999)1234567;ext=12", "879991234567@gw.example"),
        ("{phone}", "tel:7042;phone-context=example.com", "7042"),
        ("{digits}", "sip:client@127.0.0.1:5070", "sip:client@127.0.0.1:5070"),
        ("{digits}", "+79991234567", "+79991234567"),
    ],
)
def test_call_command_dials_tel_targets_through_the_template(
    tmp_path: Path, template: str, target: str, dialled: str
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, sip_dial_template=template)
    assert dial_string(settings, target) == dialled
