"""SIP requests and responses: parsing real-world datagrams and writing them back (sans-IO)."""

import re
import secrets
from dataclasses import dataclass

from telephony.sip.errors import MessageTooLarge, SipParseError
from telephony.sip.headers import Headers, canonical_name
from telephony.sip.uri import Address, Via, parse_address, parse_via

MAX_MESSAGE_BYTES = 65_535
MAX_HEADER_FIELDS = 200
MAX_HEADER_LINE_BYTES = 8_192
SIP_VERSION = "SIP/2.0"

_TOKEN_CHARS = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN = re.compile(f"^{_TOKEN_CHARS}$")
# ASCII digits only: str.isdigit() accepts "²" and "٣", and int() of thousands of digits raises.
_CSEQ_NUMBER = re.compile(r"[0-9]{1,10}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,10}")
_STATUS_CODE = re.compile(r"[1-6][0-9][0-9]")
# RFC 3261 25.1 (RFC 2234 CTL): no control character anywhere in the start line or a header
# field, except HTAB as white space. Even quoted-pair's escaped controls are refused: a NUL or an
# ESC has no business in a display name, and the C strings and logs downstream choke on them.
_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_UNSAFE = re.compile(f"[{_CONTROLS}\ufffd]")  # controls, and bytes that were not UTF-8
_REQUEST_LINE = re.compile(f"({_TOKEN_CHARS}) ([^ ]+) SIP/2\\.0", re.I)
_TRANSACTION_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_MAX_REASON_DETAIL = 120

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
}


@dataclass
class _Message:
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def from_address(self) -> Address:
        return parse_address(self.headers.get("From") or "", allow_tel=True)

    @property
    def to_address(self) -> Address:
        return parse_address(self.headers.get("To") or "", allow_tel=True)

    @property
    def top_via(self) -> Via:
        return parse_via(self.headers.get("Via") or "")

    def _head_and_body(self, start_line: str) -> bytes:
        self.headers.set("Content-Length", str(len(self.body)))
        lines = [start_line, *(f"{name}: {value}" for name, value in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class Request(_Message):
    method: str = ""
    uri: str = ""

    def to_bytes(self) -> bytes:
        return self._head_and_body(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass
class Response(_Message):
    status: int = 0
    reason: str = ""

    def to_bytes(self) -> bytes:
        return self._head_and_body(f"{SIP_VERSION} {self.status} {self.reason}")


Message = Request | Response


def parse_cseq(value: str) -> tuple[int, str]:
    """`4711 INVITE` → (4711, "INVITE"); LWS (spaces or tabs) separates them (RFC 3261 20.16)."""
    parts = value.split()
    number, method = parts if len(parts) == 2 else ("", "")
    if not _CSEQ_NUMBER.fullmatch(number) or not _TOKEN.match(method) or int(number) >= 2**31:
        raise SipParseError(f"bad CSeq {value!r}")
    return int(number), method.upper()


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Headers and body split at the first empty line, CRLF or bare-LF line ends alike."""
    found = [(index, sep) for sep in (b"\r\n\r\n", b"\n\n") if (index := data.find(sep)) >= 0]
    if not found:
        raise SipParseError("no empty line after the headers")
    index, separator = min(found)
    return data[:index], data[index + len(separator) :]


def _physical_lines(head: str) -> list[str]:
    return head.replace("\r\n", "\n").split("\n")


def _unfold(physical: list[str]) -> list[str]:
    lines: list[str] = []
    for line in physical:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def _check_lines(physical: list[str]) -> None:
    """Each line within our limit and free of control characters (before any stripping, which
    would hide a vertical tab or a form feed at either end)."""
    field = "the start line"
    for index, line in enumerate(physical):
        if len(line) > MAX_HEADER_LINE_BYTES:
            raise MessageTooLarge("header line too long")
        if index and line[:1] not in (" ", "\t"):
            name = line.partition(":")[0].strip()
            field = f"the {canonical_name(name)} header" if _TOKEN.match(name) else "a header line"
        if control := _CONTROL.search(line):
            raise SipParseError(f"control character 0x{ord(control.group()):02x} in {field}")


def parse_message(data: bytes) -> Message:
    """Parse one datagram into a Request or Response; raise SipParseError on anything wrong."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"datagram of {len(data)} bytes")
    head_bytes, rest = _split_head(data.lstrip(b"\r\n"))
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    physical = _physical_lines(head)
    _check_lines(physical)
    start_line, *field_lines = _unfold(physical)
    if len(field_lines) > MAX_HEADER_FIELDS:
        raise MessageTooLarge(f"{len(field_lines)} header fields")
    headers = Headers()
    for line in field_lines:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            raise SipParseError(f"bad header line {line[:80]!r}")
        headers.add(name, value)
    body = _body(headers, rest)
    message = _start(start_line, headers, body)
    _check_mandatory(message)
    return message


def _body(headers: Headers, rest: bytes) -> bytes:
    length_text = headers.get("Content-Length")
    if length_text is None:
        return rest
    if not _CONTENT_LENGTH.fullmatch(length_text):
        raise SipParseError(f"bad Content-Length {length_text!r}")
    length = int(length_text)
    if length > len(rest):
        raise SipParseError(f"truncated body: {len(rest)} of {length} bytes")
    return rest[:length]


def _start(line: str, headers: Headers, body: bytes) -> Message:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"bad start line {line[:80]!r}")
    if parts[0].upper() == SIP_VERSION:
        status = parts[1]
        if not _STATUS_CODE.fullmatch(status):
            raise SipParseError(f"bad status code {status!r}")
        return Response(headers=headers, body=body, status=int(status), reason=parts[2].strip())
    method, uri, version = parts
    if version.strip().upper() != SIP_VERSION or not _TOKEN.match(method) or not uri:
        raise SipParseError(f"bad request line {line[:80]!r}")
    return Request(headers=headers, body=body, method=method.upper(), uri=uri)


def _check_mandatory(message: Message) -> None:
    for name in _TRANSACTION_HEADERS:
        if not message.headers.get(name):
            raise SipParseError(f"missing {name}")
    message.top_via  # noqa: B018 - parsing validates it
    message.from_address  # noqa: B018
    message.to_address  # noqa: B018
    _, method = message.cseq
    if isinstance(message, Request) and method != message.method and message.method != "ACK":
        raise SipParseError("CSeq method does not match the request method")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """A response with Via, From, To, Call-ID and CSeq copied from the request (RFC 3261 8.2.6)."""
    response_headers = Headers()
    for name in _TRANSACTION_HEADERS:
        for value in request.headers.get_all(name):
            response_headers.add(name, value)
    if to_tag is not None and request.to_address.tag is None and status != 100:
        response_headers.set("To", str(request.to_address.with_tag(to_tag)))
    for name, value in headers or []:
        response_headers.add(name, value)
    return Response(
        headers=response_headers,
        body=body,
        status=status,
        reason=reason or REASON_PHRASES.get(status, "Unknown"),
    )


def reply_to_malformed(data: bytes, error: SipParseError) -> Response | None:
    """What a datagram `parse_message` refused with `error` earns (RFC 3261 8.2, 21.4.1): a 400
    naming the problem when it is a request other than ACK whose Vias can be read; None when it
    must be dropped: a response, an ACK, or something unreadable."""
    request = _salvage_request(data[:MAX_MESSAGE_BYTES])
    if request is None:
        return None
    detail = re.sub(r"[^\x20-\x7e]", "?", str(error))[:_MAX_REASON_DETAIL]
    return make_response(request, 400, f"Bad Request: {detail}", to_tag=_to_tag_for(request))


def _salvage_request(data: bytes) -> Request | None:
    """The request line and transaction headers of a refused datagram, when it is a request
    other than ACK and every Via in it is clean and parses; From, To, Call-ID and CSeq are kept
    with their unsafe characters removed, so that the sender can still read our answer."""
    head = data.replace(b"\r\n", b"\n").lstrip(b"\n").partition(b"\n\n")[0]
    start_line, *field_lines = _unfold(
        [line.decode("utf-8", "replace") for line in head.split(b"\n")]
    )
    match = _REQUEST_LINE.fullmatch(start_line)
    if match is None or match.group(1).upper() == "ACK":
        return None
    headers = Headers()
    for line in field_lines:
        name, colon, value = line.partition(":")
        key = canonical_name(name)
        if colon and _TOKEN.match(name.strip()) and key in _TRANSACTION_HEADERS:
            headers.add(key, value if key == "Via" else _UNSAFE.sub("", value))
    vias = headers.get_all("Via")
    if not vias or not all(_usable_via(via) for via in vias):
        return None
    return Request(headers=headers, body=b"", method=match.group(1).upper(), uri=match.group(2))


def _usable_via(value: str) -> bool:
    try:
        parse_via(value)
    except SipParseError:
        return False
    return not _UNSAFE.search(value)


def _to_tag_for(request: Request) -> str | None:
    """RFC 3261 8.2.6.2: our response's To gets a tag, when the request's To can be read."""
    try:
        request.to_address  # noqa: B018 - parsing validates it
    except SipParseError:
        return None
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Datagram:
    """Bytes to send and where to (host, port)."""

    data: bytes
    address: tuple[str, int]

