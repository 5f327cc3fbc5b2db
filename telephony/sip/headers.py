"""SIP header fields: case-insensitive, compact forms expanded, comma-joined lists split."""

from collections.abc import Iterator

COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}

# Headers whose grammar is a comma-separated list: several values may share one line.
LIST_HEADERS = frozenset(
    {
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Content-Encoding",
        "Path",
    }
)


def canonical_name(name: str) -> str:
    """`v` → `Via`, `call-id` → `Call-ID`, `content-TYPE` → `Content-Type`."""
    stripped = name.strip()
    lowered = stripped.lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    if lowered in _SPECIAL_CASE:
        return _SPECIAL_CASE[lowered]
    return "-".join(part.capitalize() for part in lowered.split("-"))


def scan_quoted(text: str) -> Iterator[tuple[int, str, bool]]:
    """Each character with its index and whether it is inside a quoted string (escapes
    honoured, RFC 3261 25.1); the quote marks themselves count as inside."""
    in_quotes = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif in_quotes and char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
            yield index, char, True
            continue
        yield index, char, in_quotes or escaped


def split_list(value: str) -> list[str]:
    """Split a list header on commas that are outside quotes and angle brackets."""
    items: list[str] = []
    start = 0
    in_angle = False
    for index, char, quoted in scan_quoted(value):
        if quoted:
            continue
        if char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            items.append(value[start:index].strip())
            start = index + 1
    items.append(value[start:].strip())
    return [item for item in items if item]


class Headers:
    """An ordered multi-map of header fields keyed by canonical name."""

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str]] = []
        for name, value in fields or []:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._fields.append((canonical_name(name), value.strip()))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, kept at the first one's position."""
        key = canonical_name(name)
        position = next((i for i, (n, _) in enumerate(self._fields) if n == key), None)
        self.remove(key)
        if position is None:
            self._fields.append((key, value.strip()))
        else:
            self._fields.insert(position, (key, value.strip()))

    def remove(self, name: str) -> None:
        key = canonical_name(name)
        self._fields = [(n, v) for n, v in self._fields if n != key]

    def get(self, name: str) -> str | None:
        """The first value of a field (for a list header: its first element)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of a field, list headers split into their elements, in order."""
        key = canonical_name(name)
        raw = [v for n, v in self._fields if n == key]
        if key in LIST_HEADERS:
            return [item for value in raw for item in split_list(value)]
        return raw

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n == canonical_name(name) for n, _ in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def copy(self) -> "Headers":
        clone = Headers()
        clone._fields = list(self._fields)
        return clone
