"""API tokens (CLI, storage, authentication), the role checks, errors, /healthz and /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import health
from api.auth import require_role
from api.errors import install_error_handlers
from api.tokens import ApiToken, Role, authenticate, create_token, hash_token, revoke_token
from infra.db import make_engine, make_sessions, transaction
from infra.metrics import Metrics

RINGBACK = Path(sys.executable).with_name("ringback")


def run_cli(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGBACK_DATA_DIR": str(data_dir)}
    env.pop("RINGBACK_DATABASE_URL", None)
    return subprocess.run(
        [str(RINGBACK), *args], env=env, capture_output=True, text=True, timeout=60,
        cwd=data_dir.parent, check=False,
    )


def test_cli_creates_a_token_that_authenticates(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert run_cli(["db", "upgrade"], data_dir).returncode == 0
    done = run_cli(["token", "create", "--role", "support", "--name", "desk"], data_dir)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and token.startswith("rb_")

    engine = make_engine(f"sqlite:///{data_dir / 'ringback.db'}")
    try:
        with make_sessions(engine)() as session:
            found = authenticate(session, token)
            assert found is not None
            assert (found.role, found.name) == (Role.SUPPORT, "desk")
    finally:
        engine.dispose()


def test_cli_token_create_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = run_cli(["token", "create", "--role", "admin"], tmp_path / "data")
    assert done.returncode == 2
    assert done.stdout == ""  # the error is the last line on stderr
    assert '"code": "database-not-migrated"' in done.stderr.splitlines()[-1]
    assert "ringback db upgrade" in done.stderr


def test_tokens_are_stored_hashed_and_can_be_revoked(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        token = create_token(session, Role.MARKETING, "tips editor")
        other = create_token(session, Role.MARKETING, "tips editor")
    assert token != other
    assert len(token) == len("rb_") + 43  # 32 bytes, URL-safe base64 without padding

    with sessions() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert token not in stored and hash_token(token) in stored
        found = authenticate(session, token)
        assert found is not None and found.role == Role.MARKETING and found.revoked_at is None
        assert authenticate(session, token + "x") is None
        assert authenticate(session, token.removeprefix("rb_")) is None
        assert authenticate(session, "") is None
        token_id = found.id

    with transaction(sessions) as session:
        revoked = revoke_token(session, token_id)
        assert revoked is not None and revoked.revoked_at is not None
        revoked_at = revoked.revoked_at
    with transaction(sessions) as session:
        again = revoke_token(session, token_id)  # idempotent: the first revocation stands
        assert again is not None and again.revoked_at == revoked_at
        assert revoke_token(session, token_id + 100) is None
    with sessions() as session:
        assert authenticate(session, token) is None
        assert authenticate(session, other) is not None


class Echo(BaseModel):
    count: int


@pytest.fixture
def app(sessions: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()
    app.state.sessions = sessions
    app.state.health_checks = {"sip": lambda: True}
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    Metrics(registry).calls_started.inc()
    install_error_handlers(app)
    app.include_router(health.router)

    @app.get("/support-only")
    def support_only(
        token: Annotated[ApiToken, Depends(require_role(Role.SUPPORT))],
    ) -> dict[str, str]:
        return {"role": token.role, "name": token.name}

    @app.post("/echo")
    def echo(body: Echo) -> Echo:
        return body

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("a bug")

    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def _token(sessions: sessionmaker[Session], role: Role) -> dict[str, str]:
    with transaction(sessions) as session:
        return {"Authorization": f"Bearer {create_token(session, role, role.value)}"}


def test_roles_are_enforced(client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = client.get("/support-only")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"

    response = client.get("/support-only", headers={"Authorization": "Bearer rb_nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"

    response = client.get("/support-only", headers=_token(sessions, Role.MARKETING))
    assert response.status_code == 403
    body = response.json()
    assert body["error"]["code"] == "forbidden" and "support" in body["error"]["message"]

    response = client.get("/support-only", headers=_token(sessions, Role.SUPPORT))
    assert response.status_code == 200
    assert response.json() == {"role": "support", "name": "support"}

    response = client.get("/support-only", headers=_token(sessions, Role.ADMIN))
    assert response.status_code == 200


def test_errors_have_one_shape(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not-found", "message": "nothing at /nowhere"}}

    response = client.delete("/echo")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method-not-allowed"

    response = client.post("/echo", json={"count": "many"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid-request" and "body.count" in error["message"]


def test_unexpected_errors_are_json_too(app: FastAPI) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal-error"
    assert "a bug" not in response.text


def test_healthz_and_metrics(client: TestClient, app: FastAPI) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "sip": "ok"}

    app.state.health_checks = {"sip": lambda: False}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "failing", "database": "ok", "sip": "failing"}

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "ringback_calls_started_total 1.0" in response.text


def test_healthz_reports_a_dead_database(tmp_path: Path) -> None:
    app = FastAPI()
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'ringback.db'}")
    app.state.sessions = make_sessions(engine)
    app.include_router(health.router)
    try:
        with TestClient(app) as client:
            response = client.get("/healthz")
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "failing", "database": "failing"}
