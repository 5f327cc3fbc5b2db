"""`/healthz` tells the truth: it fails while the database refuses writes and recovers on its own.

End to end, a real `ringback serve` on a private PostgreSQL server that is stopped and started,
and on its SQLite file made immutable and writable again. In process, the probe's own
guarantees: it writes this instance's row, it answers in time even when the SQLite thread is
stuck behind a long write, and a failing check is logged once, not on every request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from api import health
from infra.db import DatabaseThreads, make_engine, make_sessions
from infra.health import PROBE_TIMEOUT_S
from infra.health_table import HealthProbe
from infra.migrate import upgrade
from lab.postgres import PrivatePostgres
from lab.process import wait_until
from lab.ringback import RingbackService
from tests.conftest_postgres import ImmutableFiles

pytestmark = pytest.mark.peers

RECOVERY_S = 10.0
ROUNDS = 2
FAILING_REQUESTS = 3
FAILING_LINE = "health check database failing"
INSTANCE = "probe-test:1"
REQUEST_TIMEOUT_S = 10.0  # well above the probe's timeout: a hung request fails the test


# -- end to end ------------------------------------------------------------------------------


@contextmanager
def _serving(workdir: Path, env: dict[str, str]) -> Iterator[RingbackService]:
    service = RingbackService(workdir, env)
    try:
        yield service.start()
    except BaseException:
        print(f"\n===== ringback log =====\n{service.log_text()[-6000:]}")
        raise
    finally:
        service.close()


def _head(service: RingbackService) -> int:
    request = urllib.request.Request(f"{service.url}/healthz", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            assert response.read() == b""
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _assert_database_failing(service: RingbackService) -> None:
    for _ in range(FAILING_REQUESTS):
        status, body = service.get("/healthz")
        assert (status, body["status"], body["database"]) == (503, "failing", "failing"), body
    assert _head(service) == 503


def _assert_recovers(service: RingbackService) -> None:
    wait_until(lambda: service.get("/healthz")[0] == 200, RECOVERY_S, interval=0.2,
               what="/healthz 200 again")
    assert service.get("/healthz")[1]["database"] == "ok"
    assert _head(service) == 200


def _assert_logged_once_per_outage(service: RingbackService, outages: int) -> None:
    assert service.log_text().count(FAILING_LINE) == outages, service.log_text()[-4000:]


def test_healthz_follows_postgres_going_down_and_up(
    tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    env = {"RINGBACK_DATABASE_URL": private_postgres.url}
    with _serving(tmp_path / "ringback", env) as service:
        status, body = service.get("/healthz")
        assert (status, body["database"]) == (200, "ok")
        for outage in range(1, ROUNDS + 1):
            private_postgres.stop()
            _assert_database_failing(service)
            private_postgres.start()
            _assert_recovers(service)
            _assert_logged_once_per_outage(service, outage)


def test_healthz_follows_the_sqlite_file_going_unwritable_and_back(
    tmp_path: Path, immutable_files: ImmutableFiles
) -> None:
    with _serving(tmp_path / "ringback", {}) as service:
        database = service.database
        files = [database, database.with_name(database.name + "-wal")]
        assert all(path.exists() for path in files), files
        for outage in range(1, ROUNDS + 1):
            with immutable_files.held(files):  # not -shm: see test_db_recovery
                _assert_database_failing(service)
            _assert_recovers(service)
            _assert_logged_once_per_outage(service, outage)


# -- in process ------------------------------------------------------------------------------


@asynccontextmanager
async def _health_app(url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    upgrade(url)
    engine = make_engine(url)
    database = DatabaseThreads(url)
    app = FastAPI()
    app.state.sessions = make_sessions(engine)
    app.state.database = database
    app.state.instance = INSTANCE
    app.include_router(health.router)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ringback",
                                     timeout=REQUEST_TIMEOUT_S) as client:
            yield app, client
    finally:
        database.close()
        engine.dispose()


def _checked_at(app: FastAPI) -> datetime | None:
    with app.state.sessions() as session:
        checked: datetime | None = session.scalar(
            select(HealthProbe.checked_at).where(HealthProbe.instance == INSTANCE)
        )
        return checked


async def test_healthz_writes_this_instance_row(database_url: str) -> None:
    async with _health_app(database_url) as (app, client):
        assert _checked_at(app) is None
        response = await client.get("/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok",
                                                                 "database": "ok"})
        first = _checked_at(app)
        assert first is not None
        assert (await client.get("/healthz")).status_code == 200
        second = _checked_at(app)
        assert second is not None and second >= first


async def test_healthz_answers_in_time_behind_a_stuck_sqlite_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="infra.health")
    async with _health_app(f"sqlite:///{tmp_path / 'ringback.db'}") as (app, client):
        release = threading.Event()
        stuck = asyncio.ensure_future(app.state.database.run(release.wait, 60))
        try:
            for _ in range(FAILING_REQUESTS):
                response = await client.get("/healthz")
                assert (response.status_code, response.json()) == (
                    503, {"status": "failing", "database": "failing"})
        finally:
            release.set()
            await stuck
        assert [r.message for r in caplog.records if FAILING_LINE in r.message] == [
            f"{FAILING_LINE}: no write committed within {PROBE_TIMEOUT_S:g} s"
        ]
        assert await _eventually_ok(client)
        assert any("database: ok again" in r.message for r in caplog.records)


async def test_healthz_names_each_failing_check(tmp_path: Path) -> None:
    async with _health_app(f"sqlite:///{tmp_path / 'ringback.db'}") as (app, client):
        app.state.health_checks = {"sip": lambda: True, "scheduler": lambda: False}
        response = await client.head("/healthz")
        assert (response.status_code, response.content) == (503, b"")
        response = await client.get("/healthz")
        assert (response.status_code, response.json()) == (503, {
            "status": "failing", "database": "ok", "sip": "ok", "scheduler": "failing"})
        app.state.health_checks = {"sip": _raises}
        assert (await client.get("/healthz")).json()["sip"] == "failing"


def _raises() -> bool:
    raise RuntimeError("registration state unknown")


async def _eventually_ok(client: httpx.AsyncClient) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY_S
    while loop.time() < deadline:
        if (await client.get("/healthz")).status_code == 200:
            return True
        await asyncio.sleep(0.1)
    return False
