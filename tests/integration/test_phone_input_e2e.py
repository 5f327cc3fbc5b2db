"""Phone input end to end: a real `ringback serve` (SQLite, no registrar) refuses signed events
whose phone has letters or is a premium-rate number with 422 `invalid-phone`, and stores nothing
of them."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from lab.ringback import RingbackService

pytestmark = pytest.mark.peers


def premium_rate_number() -> str:
    """phonenumbers' own example of a Russian premium-rate number, as a person writes it."""
    number = phonenumbers.example_number_for_type("RU", phonenumbers.PhoneNumberType.PREMIUM_RATE)
    assert number is not None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@pytest.fixture
def svc(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RingbackService]:
    service = RingbackService(tmp_path / "ringback", {"RINGBACK_DEFAULT_REGION": "RU"})
    try:
        yield service.start()
    finally:
        service.close()
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            print(f"\n===== ringback log =====\n{service.log_text()[-8000:]}")


def call_completed(phone: str) -> dict[str, Any]:
    ended = datetime.now(UTC) - timedelta(seconds=1)
    return {
        "id": f"evt-{uuid.uuid4()}",
        "type": "call.completed",
        "occurred_at": ended.isoformat(),
        "data": {
            "call_id": f"call-{uuid.uuid4().hex[:8]}", "client_id": "c-1", "phone": phone,
            "ended_at": ended.isoformat(), "duration_s": 120, "timezone": "Europe/Moscow",
        },
    }


def count(svc: RingbackService, table: str) -> int:
    with sqlite3.connect(svc.database) as db:
        [(rows,)] = db.execute(f"select count(*) from {table}").fetchall()
    return int(rows)


@pytest.mark.parametrize("phone", ["+7 (999) abc-de-fg", "+7 (999) CALL-NOW", "+7 999 ЗВОНИ-ЖДУ"])
def test_letters_in_a_phone_are_refused_and_nothing_is_stored(
    svc: RingbackService, phone: str
) -> None:
    status, body = svc.post_event(call_completed(phone))
    assert status == 422, body
    assert body["error"]["code"] == "invalid-phone"
    assert body["error"]["message"].startswith("data.phone: must not contain letters")
    assert count(svc, "webhook_events") == 0
    assert count(svc, "jobs") == 0


def test_a_premium_rate_number_is_refused_and_a_mobile_is_accepted(svc: RingbackService) -> None:
    status, body = svc.post_event(call_completed(premium_rate_number()))
    assert status == 422, body
    assert body["error"] == {
        "code": "invalid-phone",
        "message": "data.phone: is a premium rate number, which ringback does not call",
    }
    assert count(svc, "webhook_events") == 0
    assert count(svc, "jobs") == 0

    status, body = svc.post_event(call_completed("8 (999) 123-45-67"))
    assert status == 202, body
    assert count(svc, "webhook_events") == 1
    with sqlite3.connect(svc.database) as db:
        assert db.execute("select phone from jobs").fetchall() == [("+79991234567",)]
