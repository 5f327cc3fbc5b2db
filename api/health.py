"""`GET /healthz` for load balancers and `GET /metrics` for Prometheus.

`/healthz` checks the database with `SELECT 1`, then every check in
`app.state.health_checks` (name → a callable returning True when healthy, e.g. "sip": the
registration is up). 200 when all pass, 503 otherwise; the body names each check.
"""

import logging
from collections.abc import Callable, Mapping

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


def _database_ok(sessions: sessionmaker[Session]) -> bool:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check: the database is not answering")
        return False
    return True


def _check_ok(name: str, check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        log.exception("health check %s raised", name)
        return False


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    results = {"database": _database_ok(request.app.state.sessions)}
    checks: Mapping[str, Callable[[], bool]] = getattr(request.app.state, "health_checks", {})
    for name, check in checks.items():
        results[name] = _check_ok(name, check)
    healthy = all(results.values())
    body = {"status": "ok" if healthy else "failing"}
    body.update({name: "ok" if ok else "failing" for name, ok in results.items()})
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = getattr(request.app.state, "metrics_registry", REGISTRY)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
