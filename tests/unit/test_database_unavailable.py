"""A request the database cannot serve now is a 503 `database-unavailable` with Retry-After
(the CRM retries), not a 500; any other fault stays a 500."""

import sqlite3

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import InterfaceError, OperationalError

from api.errors import install_error_handlers


def app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/webhooks/crm")
    def webhook() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def sqlite_error(code: int, text: str) -> OperationalError:
    error = sqlite3.OperationalError(text)
    error.sqlite_errorcode = code  # as sqlite3 sets it
    return OperationalError("INSERT", {}, error)


def test_an_unreachable_database_is_a_503_to_retry() -> None:
    lost = InterfaceError("SELECT", {}, Exception("connection already closed"),
                          connection_invalidated=True)
    for exc in (sqlite_error(sqlite3.SQLITE_IOERR_WRITE, "disk I/O error"),
                sqlite_error(sqlite3.SQLITE_BUSY, "database is locked"),
                sqlite_error(sqlite3.SQLITE_READONLY, "attempt to write a readonly database"),
                OperationalError("connect", {}, Exception("connection refused")), lost):
        response = app_raising(exc).post("/webhooks/crm")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database-unavailable"
        assert response.headers["retry-after"] == "5"


def test_any_other_fault_is_still_a_500() -> None:
    for exc in (ValueError("a bug"), sqlite_error(sqlite3.SQLITE_ERROR, "no such table: jobs")):
        response = app_raising(exc).post("/webhooks/crm")
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal-error"
