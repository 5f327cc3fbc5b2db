"""SIP over a byte stream (TCP), sans-IO: cutting the stream into messages, and what the
transport writes into our own messages before they go out on a connection.

RFC 3261 18.3: on a stream every message carries a Content-Length, and the stream is cut by it.
Anything that cannot be framed (no Content-Length, a head or a message over our limits, bytes
that are not SIP) leaves the stream without a known boundary: the connection must be closed.
"""

import re

from telephony.sip.errors import SipParseError
from telephony.sip.message import MAX_MESSAGE_BYTES

MAX_HEAD_BYTES = 16_384
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_START_LINE = re.compile(
    rb"(?:SIP/2\.0 [1-6][0-9]{2}(?: .*)?|[A-Za-z0-9\-.!%*_+`'~]+ \S+ SIP/2\.0)", re.IGNORECASE
)
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
_LENGTH_VALUE = re.compile(rb"[ \t]*([0-9]{1,10})[ \t]*\r?")
_TOP_VIA = re.compile(rb"^((?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*)UDP",
                      re.IGNORECASE | re.MULTILINE)
_CONTACT = re.compile(rb"^((?:contact|m)[ \t]*:[^\r\n<]*<sip:[^>;?]*)([^>]*>)",
                      re.IGNORECASE | re.MULTILINE)


class FramingError(SipParseError):
    """The stream cannot be cut into messages any more: close the connection."""


class StreamFramer:
    """Bytes in, whole messages out. `feed` raises FramingError once the stream is unusable;
    the framer holds at most one message's worth of bytes."""

    def __init__(
        self, max_message_bytes: int = MAX_MESSAGE_BYTES, max_head_bytes: int = MAX_HEAD_BYTES
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_head_bytes = max_head_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while (message := self._next()) is not None:
            messages.append(message)
        return messages

    def _next(self) -> bytes | None:
        # CRLFs between messages are keep-alives (RFC 5626 3.5.1): dropped.
        start = len(self._buffer) - len(self._buffer.lstrip(b"\r\n"))
        del self._buffer[:start]
        first_line_end = self._buffer.find(b"\n")
        if first_line_end >= 0 and not _START_LINE.fullmatch(
            bytes(self._buffer[:first_line_end]).rstrip(b"\r")
        ):
            raise FramingError("not a SIP start line")
        head_end = _HEAD_END.search(self._buffer, 0, self.max_head_bytes + 4)
        if head_end is None:
            if len(self._buffer) > self.max_head_bytes:
                raise FramingError(f"header of more than {self.max_head_bytes} bytes")
            return None
        length = _content_length(bytes(self._buffer[: head_end.start()]))
        total = head_end.end() + length
        if total > self.max_message_bytes:
            raise FramingError(f"message of {total} bytes")
        if len(self._buffer) < total:
            return None
        message = bytes(self._buffer[:total])
        del self._buffer[:total]
        return message


def _content_length(head: bytes) -> int:
    values = {match.group(1) for match in _CONTENT_LENGTH.finditer(head)}
    if not values:
        raise FramingError("no Content-Length on a stream")
    if len(values) > 1:
        raise FramingError("conflicting Content-Length values")
    number = _LENGTH_VALUE.fullmatch(values.pop())
    if number is None:
        raise FramingError("bad Content-Length")
    return int(number.group(1))


def for_tcp(data: bytes) -> bytes:
    """One of our messages as it goes out on a connection: a request's top Via says TCP
    (RFC 3261 18.1.1: the transport fills in the protocol), and our Contact `;transport=tcp`,
    so that the far end reaches us over TCP too. Nothing else changes (nor the body)."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"SIP/2.0 "):
        head = _TOP_VIA.sub(rb"\1TCP", head, count=1)
    head = _CONTACT.sub(_with_tcp_transport, head, count=1)
    return head + separator + body


def _with_tcp_transport(match: re.Match[bytes]) -> bytes:
    params = match.group(2)
    if b";transport=" in params.lower():
        return match.group(0)
    return match.group(1) + b";transport=tcp" + params
