"""The outbox's own log lines and stored errors never show the CRM URL (it may hold a token),
whatever the CRM answers or the transport raises (httpx, which would, is quieted: see
tests/unit/test_log_masking.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.models import OutboxEvent
from campaigns.outbox import OutboxDelivery, enqueue
from infra.db import make_engine, make_sessions
from infra.migrate import upgrade

TOKEN = "s3cr3t-t0ken"
URL = f"https://crm.example.com/hooks/ringback?token={TOKEN}"
SECRET = "whsec_" + "dGVzdC1vdXRib3VuZC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE="


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'ringback.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_sessions(engine)
    finally:
        engine.dispose()


def _echo_url(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text=f"no route for {request.url} (client +79991234567)")


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"cannot reach {request.url}", request=request)


@pytest.mark.parametrize("handler", [_echo_url, _refuse])
async def test_outbox_logs_and_errors_never_show_the_crm_url(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture,
    handler: Callable[[httpx.Request], httpx.Response],
) -> None:
    with sessions.begin() as session:
        enqueue(session, "survey.completed", "c1", {"client_id": "c1"})
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        delivery = OutboxDelivery(sessions, URL, SECRET, http, max_backoff_s=1.0)
        assert await delivery.deliver_due() == 0
    ours = [record.getMessage() for record in caplog.records
            if record.name.startswith("campaigns")]
    assert any("not delivered" in line for line in ours)
    assert not any(TOKEN in line for line in ours)
    with sessions() as session:
        error = session.scalars(select(OutboxEvent.last_error)).one()
    assert error is not None and "<crm-url>" in error and TOKEN not in error
    assert "+79991234567" not in error

