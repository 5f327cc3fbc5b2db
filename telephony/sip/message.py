"""SIP requests and responses: parsing real-world datagrams and writing them back (sans-IO)."""

import re
from dataclasses import dataclass

from telephony.sip.errors import MessageTooLarge, SipParseError
from telephony.sip.headers import Headers
from telephony.sip.uri import Address, Via, parse_address, parse_via

MAX_MESSAGE_BYTES = 65_535
MAX_HEADER_FIELDS = 200
MAX_HEADER_LINE_BYTES = 8_192
SIP_VERSION = "SIP/2.0"

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
# ASCII digits only: str.isdigit() accepts "²" and "٣", and int() of thousands of digits raises.
_CSEQ_NUMBER = re.compile(r"[0-9]{1,10}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,10}")
_STATUS_CODE = re.compile(r"[1-6][0-9][0-9]")

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
        return parse_address(self.headers.get("From") or "")

    @property
    def to_address(self) -> Address:
        return parse_address(self.headers.get("To") or "")

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


def _unfold(head: str) -> list[str]:
    lines: list[str] = []
    for line in head.replace("\r\n", "\n").split("\n"):
        if len(line) > MAX_HEADER_LINE_BYTES:
            raise MessageTooLarge("header line too long")
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def parse_message(data: bytes) -> Message:
    """Parse one datagram into a Request or Response; raise SipParseError on anything wrong."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"datagram of {len(data)} bytes")
    head_bytes, rest = _split_head(data.lstrip(b"\r\n"))
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    start_line, *field_lines = _unfold(head)
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
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
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
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
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


@dataclass(frozen=True)
class Datagram:
    """Bytes to send and where to (host, port)."""

    data: bytes
    address: tuple[str, int]

