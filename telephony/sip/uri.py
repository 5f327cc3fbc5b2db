"""SIP URIs, name-addr values (From, To, Contact, Route) and Via values."""

import re
from dataclasses import dataclass, field, replace

from telephony.sip.errors import CallError, SipParseError
from telephony.sip.headers import scan_quoted

DEFAULT_SIP_PORT = 5060

# RFC 3261 25.1: SLASH and COLON allow linear white space around them ("SIP / 2.0 / UDP").
_VIA_PROTOCOL = re.compile(
    r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(.*)$", re.IGNORECASE | re.DOTALL
)
_PORT = re.compile(r"[0-9]{1,5}")
# RFC 3966 3: global numbers start with "+" and hold a digit; local ones hold a hex digit, "*" or
# "#"; both may carry visual separators.
_TEL_GLOBAL = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_PARAM_NAME = re.compile(r"[A-Za-z0-9\-]+")
_TEL_PARAM_VALUE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")


def _parse_params(text: str) -> dict[str, str | None]:
    """`;a=1;lr;b="x y"` → {"a": "1", "lr": None, "b": '"x y"'}; names lower-cased."""
    params: dict[str, str | None] = {}
    for part in _split_outside_quotes(text, ";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        params[name.strip().lower()] = value.strip() if sep else None
    return params


def value_and_params(text: str) -> tuple[str, dict[str, str | None]]:
    """A token with parameters, as in Event and Subscription-State: `refer;id=7` →
    ("refer", {"id": "7"}); the token lower-cased, parameter names too."""
    value, _, params = text.partition(";")
    return value.strip().lower(), _parse_params(params)


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
        if char == separator and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host:port {text!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise SipParseError(f"empty host in {text!r}")
    if not port_text:
        return host, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port in {text!r}")
    return host, int(port_text)


def bare_host(host: str) -> str:
    """A host as a socket wants it: IPv6 references lose their brackets."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@dataclass(frozen=True)
class SipUri:
    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @property
    def host_port(self) -> tuple[str, int]:
        """Where to send to, for a URI whose host is an address (no DNS SRV here)."""
        return bare_host(self.host), self.port or DEFAULT_SIP_PORT

    @property
    def is_loose_router(self) -> bool:
        return "lr" in self.params

    def with_params(self, **params: str | None) -> "SipUri":
        return replace(self, params={**self.params, **params})

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{_format_params(self.params)}{headers}"


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("sip", "sips"):
        raise SipParseError(f"not a SIP URI: {text!r}")
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        # RFC 3261 25.1: a user part may hold "?", ";" and "," (user-unreserved) but never "@".
        userinfo, _, rest = rest.partition("@")
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
    rest, _, headers = rest.partition("?")
    hostport, _, params = rest.partition(";")
    host, port = _split_host_port(hostport)
    return SipUri(
        host=host.lower(),
        user=user,
        port=port,
        scheme=scheme,
        password=password,
        params=_parse_params(params),
        headers=headers,
    )


@dataclass(frozen=True)
class TelUri(SipUri):
    """An RFC 3966 `tel:` URI, as trunks put in From and To: the number in `user` (visual
    separators kept, so it prints back as it came) and its parameters, no host.

    A `SipUri` so that everything written for From and To URIs carries it; nothing can be sent
    to it, and `host_port` says so with a `CallError`.
    """

    @property
    def phone(self) -> str:
        """The number without visual separators: `+7-999-123-45-67` → `+79991234567`."""
        return (self.user or "").translate(_VISUAL_SEPARATORS)

    @property
    def host_port(self) -> tuple[str, int]:
        raise CallError(f"{self} names no host to send to")

    def __str__(self) -> str:
        return f"tel:{self.user}{_format_params(self.params)}"


def is_tel_uri(text: str) -> bool:
    return text.strip().lower().startswith("tel:")


def parse_tel_uri(text: str) -> TelUri:
    """`tel:+7-999-123-45-67`, `tel:1234;phone-context=example.com;ext=5` (RFC 3966)."""
    if not is_tel_uri(text):
        raise SipParseError(f"not a tel URI: {text!r}")
    number, _, param_text = text.strip()[4:].partition(";")
    if not (_TEL_GLOBAL.fullmatch(number) or _TEL_LOCAL.fullmatch(number)):
        raise SipParseError(f"bad telephone number in {text!r}")
    params = _parse_params(param_text)
    for name, value in params.items():
        if not _TEL_PARAM_NAME.fullmatch(name) or not (
            value is None or _TEL_PARAM_VALUE.fullmatch(value)
        ):
            raise SipParseError(f"bad parameter {name!r} in {text!r}")
    return TelUri(host="", user=number, scheme="tel", params=params)


@dataclass(frozen=True)
class Address:
    """A name-addr or addr-spec with header parameters: `"Ann" <sip:ann@h>;tag=1`."""

    uri: SipUri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> "Address":
        return replace(self, params={**self.params, "tag": tag})

    def __str__(self) -> str:
        display = ""
        if self.display_name:
            quoted = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{quoted}" '
        return f"{display}<{self.uri}>{_format_params(self.params)}"


def _angle_start(text: str) -> int:
    """Where the `<` opening a name-addr is: not inside a quoted display name (RFC 3261 25.1)."""
    return next((i for i, char, quoted in scan_quoted(text) if char == "<" and not quoted), -1)


def _unquote(text: str) -> str:
    """The content of a quoted-string, quoted-pairs (`\\"`, `\\\\`) undone."""
    return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)


def parse_address(text: str, *, allow_tel: bool = False) -> Address:
    """A name-addr or addr-spec; `allow_tel` lets its URI be a `tel:` URI (From and To: RFC
    3261 20.20 / 20.39), where routing headers (Contact, Route) need a SIP URI."""
    text = text.strip()
    display: str | None = None
    start = _angle_start(text)
    if start >= 0:
        before, after = text[:start], text[start + 1 :]
        uri_text, closed, params = after.partition(">")
        if not closed:
            raise SipParseError(f"unterminated '<' in {text!r}")
        before = before.strip()
        if before.startswith('"') and before.endswith('"') and len(before) >= 2:
            display = _unquote(before)
        elif before:
            display = before
    else:
        # addr-spec: parameters after the URI belong to the header, not the URI.
        uri_text, _, params = text.partition(";")
        params = ";" + params if params else ""
    uri = parse_tel_uri(uri_text) if allow_tel and is_tel_uri(uri_text) else parse_uri(uri_text)
    return Address(uri=uri, display_name=display, params=_parse_params(params))


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{_format_params(self.params)}"


def parse_via(text: str) -> Via:
    match = _VIA_PROTOCOL.match(text)
    if match is None:
        raise SipParseError(f"bad Via {text!r}")
    transport, rest = match.groups()
    sent_by, _, params = rest.partition(";")
    host_port = re.sub(r"\s*:\s*", ":", sent_by.strip())
    if not host_port or any(char.isspace() for char in host_port):
        raise SipParseError(f"bad Via {text!r}")
    host, port = _split_host_port(host_port)
    return Via(transport=transport.upper(), host=host, port=port, params=_parse_params(params))
