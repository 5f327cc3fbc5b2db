"""Logging set-up: one line per record on stderr, phone numbers masked in every message."""

import logging
import re
import sys

# A run of 7+ digits (optionally after + or sip:) is a phone number; keep only the last 2 digits.
_PHONE = re.compile(r"(?<![\w.])(\+?)(\d{5,})(\d{2})(?!\w)")


def mask_phone_numbers(text: str) -> str:
    return _PHONE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)


class PhoneMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_phone_numbers(record.getMessage())
        record.args = None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
