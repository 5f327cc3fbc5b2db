"""DTMF carried in SIP INFO bodies (application/dtmf-relay and application/dtmf), sans-IO."""

DIGITS = "0123456789*#ABCD"
_SIGNAL_CODES = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}
MAX_BODY_BYTES = 1024


def _normalise(signal: str) -> str | None:
    signal = signal.strip().upper()
    signal = _SIGNAL_CODES.get(signal, signal)
    return signal if len(signal) == 1 and signal in DIGITS else None


def digit_from_info(content_type: str | None, body: bytes) -> str | None:
    """The key an INFO carries, or None when it is not DTMF we understand."""
    if content_type is None or len(body) > MAX_BODY_BYTES:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("ascii", errors="replace")
    if media_type == "application/dtmf":
        return _normalise(text)
    if media_type != "application/dtmf-relay":
        return None
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == "signal":
            return _normalise(value)
    return None
