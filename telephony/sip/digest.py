"""HTTP digest authentication as SIP uses it (RFC 2617, RFC 7616, RFC 8760), sans-IO.

Only the client side: read a 401/407 challenge, answer it. The password is used to compute
the response and is never stored, formatted into an exception or logged.
"""

import hashlib
import secrets
from dataclasses import dataclass

from telephony.sip.errors import LocalProtocolError, RemoteProtocolError
from telephony.sip.message import Response

MAX_CHALLENGE_CHARS = 4_096

# Supported algorithms, best first; the value is the hashlib name.
_ALGORITHMS: dict[str, str] = {
    "SHA-256": "sha256",
    "SHA-256-sess": "sha256",
    "MD5": "md5",
    "MD5-sess": "md5",
}
_CANONICAL_ALGORITHM = {name.upper(): name for name in _ALGORITHMS}
_PREFERENCE = list(_ALGORITHMS)
_SUPPORTED_QOP = ("auth", "auth-int")
_SEPARATORS = frozenset(' \t,="')


class AuthError(RemoteProtocolError):
    """A challenge we cannot read or cannot answer."""


@dataclass(frozen=True)
class Challenge:
    """One `Digest` challenge of a WWW-Authenticate or Proxy-Authenticate header."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @property
    def supported(self) -> bool:
        """We know its algorithm, and it offers no qop or one we can do."""
        qop_ok = not self.qop or any(q in _SUPPORTED_QOP for q in self.qop)
        return self.algorithm in _ALGORITHMS and qop_ok


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_token(text: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(text) and text[pos] not in _SEPARATORS and text[pos] not in "\r\n":
        pos += 1
    return text[start:pos], pos


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """A quoted-string starting at the opening quote; backslash escapes one character."""
    chars: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            chars.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(chars), pos + 1
        else:
            chars.append(char)
            pos += 1
    raise AuthError("unterminated quoted-string in challenge")


def _read_param(text: str, pos: int) -> tuple[str, str, int]:
    name, pos = _read_token(text, _skip_spaces(text, pos))
    pos = _skip_spaces(text, pos)
    if not name or pos >= len(text) or text[pos] != "=":
        raise AuthError("malformed auth-param in challenge")
    pos = _skip_spaces(text, pos + 1)
    if pos < len(text) and text[pos] == '"':
        value, pos = _read_quoted(text, pos)
    else:
        value, pos = _read_token(text, pos)
    return name.lower(), value, pos


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = _skip_spaces(text, 0)
    while pos < len(text):
        name, value, pos = _read_param(text, pos)
        params.setdefault(name, value)
        pos = _skip_spaces(text, pos)
        if pos < len(text):
            if text[pos] != ",":
                raise AuthError("expected ',' between challenge parameters")
            pos = _skip_spaces(text, pos + 1)
    return params


def _canonical_algorithm(value: str) -> str:
    return _CANONICAL_ALGORITHM.get(value.strip().upper(), value.strip())


def parse_challenge(value: str) -> Challenge:
    """Parse `Digest realm="x", nonce="y", ...`; raise AuthError unless it is a usable Digest."""
    if len(value) > MAX_CHALLENGE_CHARS:
        raise AuthError("challenge too long")
    scheme, *rest = value.strip().split(None, 1) or [""]
    if scheme.lower() != "digest":
        raise AuthError(f"not a Digest challenge: scheme {scheme[:20]!r}")
    params = _parse_params(rest[0] if rest else "")
    if "realm" not in params:
        raise AuthError("Digest challenge without realm")
    if not params.get("nonce"):
        raise AuthError("Digest challenge without nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_canonical_algorithm(params.get("algorithm", "MD5")),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def _header_names(status: int) -> tuple[str, str]:
    if status == 401:
        return "WWW-Authenticate", "Authorization"
    if status == 407:
        return "Proxy-Authenticate", "Proxy-Authorization"
    raise LocalProtocolError(f"a {status} response carries no authentication challenge")


def _usable(values: list[str]) -> list[Challenge]:
    challenges: list[Challenge] = []
    for value in values:
        try:
            challenge = parse_challenge(value)
        except AuthError:
            continue
        if challenge.supported:
            challenges.append(challenge)
    return challenges


def choose_challenge(response: Response) -> tuple[str, Challenge]:
    """The header to answer with and the best challenge of a 401 or 407 (SHA-256 over MD5)."""
    challenge_header, answer_header = _header_names(response.status)
    challenges = _usable(response.headers.get_all(challenge_header))
    if not challenges:
        raise AuthError(f"no usable Digest challenge in {challenge_header}")
    best = min(challenges, key=lambda c: _PREFERENCE.index(c.algorithm))
    return answer_header, best


def _hash(algorithm: str, text: str) -> str:
    return hashlib.new(_ALGORITHMS[algorithm], text.encode("utf-8")).hexdigest()


def _choose_qop(challenge: Challenge) -> str | None:
    if not challenge.qop:
        return None
    for qop in _SUPPORTED_QOP:
        if qop in challenge.qop:
            return qop
    raise AuthError(f"no supported qop among {challenge.qop}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class _Answer:
    method: str
    uri: str
    username: str
    qop: str | None
    nc: str
    cnonce: str
    body: bytes


def _response(challenge: Challenge, answer: _Answer, password: str) -> str:
    algorithm = challenge.algorithm
    ha1 = _hash(algorithm, f"{answer.username}:{challenge.realm}:{password}")
    if algorithm.endswith("-sess"):
        ha1 = _hash(algorithm, f"{ha1}:{challenge.nonce}:{answer.cnonce}")
    a2 = f"{answer.method}:{answer.uri}"
    if answer.qop == "auth-int":
        body_hash = hashlib.new(_ALGORITHMS[algorithm], answer.body).hexdigest()
        a2 = f"{a2}:{body_hash}"
    ha2 = _hash(algorithm, a2)
    if answer.qop is None:
        return _hash(algorithm, f"{ha1}:{challenge.nonce}:{ha2}")
    return _hash(
        algorithm, f"{ha1}:{challenge.nonce}:{answer.nc}:{answer.cnonce}:{answer.qop}:{ha2}"
    )


def _format(challenge: Challenge, answer: _Answer, response: str) -> str:
    parts = [
        f"username={_quote(answer.username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(answer.uri)}",
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if answer.qop is not None or challenge.algorithm.endswith("-sess"):
        parts.append(f"cnonce={_quote(answer.cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if answer.qop is not None:
        parts.extend((f"qop={answer.qop}", f"nc={answer.nc}"))
    return "Digest " + ", ".join(parts)


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The Authorization / Proxy-Authorization value answering `challenge`.

    qop=auth when offered (auth-int, over `body`, only when it is the sole choice); no qop
    when the challenge had none (RFC 2069).
    """
    if challenge.algorithm not in _ALGORITHMS:
        raise AuthError(f"unsupported digest algorithm {challenge.algorithm[:40]!r}")
    if not 0 < nc < 2**32:
        raise LocalProtocolError(f"nonce count {nc} out of range")
    answer = _Answer(
        method=method.upper(),
        uri=uri,
        username=username,
        qop=_choose_qop(challenge),
        nc=f"{nc:08x}",
        cnonce=cnonce if cnonce is not None else secrets.token_hex(16),
        body=body,
    )
    return _format(challenge, answer, _response(challenge, answer, password))
