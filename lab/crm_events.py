"""CRM events as the lab's CRM sends them (the envelope of docs/crm-contract.md), and posting
several at one moment."""

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from lab.ringback import RingbackService

SURVEY_CLIENT_PHONE = "+79990000001"


def numbers(count: int, first: int = 0) -> list[str]:
    """`count` distinct client numbers (digits, as registered at Kamailio)."""
    return [f"7999100{n:04d}" for n in range(first, first + count)]


def envelope(event_type: str, data: dict[str, Any], *, event_id: str | None = None,
             occurred_at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt-{uuid.uuid4()}",
        "type": event_type,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "data": data,
    }


def call_completed(*, phone: str = SURVEY_CLIENT_PHONE, client: str = "c-1", duration: int = 120,
                   locale: str = "en", event_id: str | None = None) -> dict[str, Any]:
    """A support call that ended a second ago: the survey's trigger."""
    ended = datetime.now(UTC) - timedelta(seconds=1)
    return envelope("call.completed", {
        "call_id": f"call-{uuid.uuid4().hex[:8]}", "client_id": client, "phone": phone,
        "ended_at": ended.isoformat(), "duration_s": duration, "agent_id": "agent-7",
        "timezone": "Europe/Moscow", "locale": locale,
    }, event_id=event_id, occurred_at=ended)


def balance_low(*, phone: str = SURVEY_CLIENT_PHONE, client: str = "c-1",
                balance: str = "350.50", currency: str = "USD", locale: str = "en",
                **extra: Any) -> dict[str, Any]:
    """A low balance: the warning call's trigger (`extra`: days_left, name, manager_phone ...)."""
    return envelope("balance.low", {
        "client_id": client, "phone": phone, "balance": balance, "currency": currency,
        "timezone": "Europe/Moscow", "locale": locale, **extra,
    })


def campaign_stopping(*, phone: str = SURVEY_CLIENT_PHONE, client: str = "c-1",
                      campaign: str = "Winter sale", stops_at: datetime | None = None,
                      locale: str = "en", **extra: Any) -> dict[str, Any]:
    stops = stops_at or datetime.now(UTC) + timedelta(days=2)
    return envelope("campaign.stopping", {
        "client_id": client, "phone": phone, "campaign_id": "cmp-1", "campaign_name": campaign,
        "stops_at": stops.isoformat(), "timezone": "Europe/Moscow", "locale": locale, **extra,
    })


def topped_up(*, client: str = "c-1", amount: str = "1000") -> dict[str, Any]:
    return envelope("balance.topped_up", {"client_id": client, "amount": amount})


def post_together(posts: list[tuple[RingbackService, dict[str, Any]]]) -> list[int]:
    """POST every event at the same moment, each from its own thread; their HTTP statuses."""
    start = threading.Barrier(len(posts), timeout=30)
    statuses: list[int] = [0] * len(posts)

    def post(i: int) -> None:
        svc, event = posts[i]
        start.wait()
        statuses[i] = svc.post_event(event)[0]

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(posts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses
