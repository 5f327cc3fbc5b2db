"""Logging set-up: one record per line on stderr (text, or one JSON object per line), phone
numbers masked in every message and every traceback, the request id of the HTTP request a
record was logged in.

Phone numbers are found by `phonenumbers.PhoneNumberMatcher` with `Leniency.VALID`: a number
must be valid for its region (the configured default region for numbers written without a
country code, e.g. `8 (999) 123-45-67`), and must not be glued to letters. POSSIBLE would take
any run of digits of a possible length (Unix timestamps, ports, counters, numbers glued to
letters); STRICT_GROUPING and EXACT_GROUPING would miss numbers typed with other groupings than
the national format. On top of that, a number joined by `-` or `_` to letters or digits is part
of an id (`evt-9991234567`, a UUID) and left alone. Every digit of a number but the last two is
replaced by `*`; its punctuation stays.

Quiet by default: APScheduler writes two lines per tick at INFO, so its loggers are at WARNING
unless the level is DEBUG; httpx and httpcore log every request's full URL (a CRM URL may hold a
token), so they are always at WARNING.
"""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from phonenumbers import Leniency, PhoneNumberMatcher

LogFormat = Literal["text", "json"]

DEFAULT_REGION = "RU"
_ID_JOINERS = "-_"
# Loggers quieted to WARNING: unless the level is DEBUG / always.
_CHATTY = ("apscheduler",)
_LEAKY = ("httpx", "httpcore")

# The id of the HTTP request being served (set by api.request_id), None outside requests.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_region = DEFAULT_REGION


class _AlembicHousekeeping(logging.Filter):
    """Drops the two lines alembic logs whenever a migration context is made ("Context impl
    SQLiteImpl.", "Will assume non-transactional DDL."): every CLI command makes one to check the
    schema, and `hold stream`'s stderr is Asterisk's log. The upgrades it runs are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


def mask_phone_numbers(text: str, region: str | None = None) -> str:
    """`text` with every phone number's digits but the last two replaced by `*`; numbers
    without a country code are read in `region` (default: the one `configure_logging` got)."""
    parts = []
    end = 0
    for match in PhoneNumberMatcher(text, region or _region, leniency=Leniency.VALID):
        if _part_of_id(text, match.start, match.end):
            continue
        parts += [text[end:match.start], _masked(match.raw_string)]
        end = match.end
    return "".join(parts) + text[end:] if parts else text


def mask_phone(number: str) -> str:
    """One number (a stored E.164 number, say) masked as the logs mask numbers in text:
    `+79123456789` -> `+**********89`. Unlike `mask_phone_numbers`, it does not look for the
    number first, so a number the matcher would not recognise is masked all the same."""
    return _masked(number)


def _part_of_id(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 2):start]
    after = text[end:end + 2]
    return (len(before) == 2 and before[1] in _ID_JOINERS and before[0].isalnum()) or (
        len(after) == 2 and after[0] in _ID_JOINERS and after[1].isalnum())


def _masked(number: str) -> str:
    keep = sum(char.isdigit() for char in number) - 2
    masked = []
    for char in number:
        if char.isdigit() and keep > 0:
            masked.append("*")
            keep -= 1
        else:
            masked.append(char)
    return "".join(masked)


class MaskingFormatter(logging.Formatter):
    """The message and the exception text (a traceback, SQLAlchemy's `[parameters: ...]`)
    with phone numbers masked; the record itself is left as it was."""

    def masked_parts(self, record: logging.LogRecord) -> tuple[str, str | None]:
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        elif record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        detail = mask_phone_numbers("\n".join(details)) if details else None
        return mask_phone_numbers(record.getMessage()), detail


class TextFormatter(MaskingFormatter):
    """`time LEVEL logger: message [request_id=...]`, then the masked traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        message, detail = self.masked_parts(record)
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"
        current = request_id.get()
        if current is not None:
            line += f" [request_id={current}]"
        return line if detail is None else f"{line}\n{detail}"


class JsonFormatter(MaskingFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, and request_id
    and exception when there are."""

    def format(self, record: logging.LogRecord) -> str:
        message, detail = self.masked_parts(record)
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        if detail is not None:
            entry["exception"] = detail
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "text", region: str = DEFAULT_REGION
) -> None:
    """Every record to stderr through one handler on the root logger; `region` reads the phone
    numbers written without a country code (RINGBACK_DEFAULT_REGION)."""
    global _region
    _region = region
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    chatty_level = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in _CHATTY:
        logging.getLogger(name).setLevel(chatty_level)
    for name in _LEAKY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").filters[:] = \
        [] if level.upper() == "DEBUG" else [_AlembicHousekeeping()]
