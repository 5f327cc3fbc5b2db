"""`GET|HEAD /healthz` for load balancers and `GET /metrics` for Prometheus.

`/healthz` proves the database takes writes: it upserts this instance's row in `health_probes`
and commits, within `infra.health.PROBE_TIMEOUT_S` (see `DatabaseProbe`). Then it asks every
check in `app.state.health_checks` (name → a callable returning True when healthy, e.g. "sip":
the registration is current). 200 `{"status": "ok", "database": "ok", ...}` when all pass,
503 with `"status": "failing"` and each failing part named otherwise. A check that starts
failing is logged once (with the reason), and once more when it recovers.

The instance is `app.state.instance` (the composition root sets it), the database work runs
on `app.state.database` (`DatabaseThreads`); without them, a constant name and a worker thread.
"""

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from infra.health import DEFAULT_INSTANCE, DatabaseProbe, HealthLog, describe

router = APIRouter(tags=["operations"])


@dataclass
class Health:
    """The state `/healthz` keeps between requests: the probe and the log of changes."""

    database: DatabaseProbe
    log: HealthLog


def _health_of(app: FastAPI) -> Health:
    """The app's `Health`, built on first use unless the composition root set
    `app.state.health`."""
    health: Health | None = getattr(app.state, "health", None)
    if health is None:
        database = getattr(app.state, "database", None)
        run = asyncio.to_thread if database is None else database.run
        instance: str = getattr(app.state, "instance", DEFAULT_INSTANCE)
        health = Health(DatabaseProbe(app.state.sessions, instance, run), HealthLog())
        app.state.health = health
    return health


def _failure(check: Callable[[], bool]) -> str | None:
    try:
        return None if check() else "reported unhealthy"
    except Exception as exc:
        return f"raised {describe(exc)}"


@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    health = _health_of(request.app)
    failures = {"database": await health.database.failure()}
    checks: Mapping[str, Callable[[], bool]] = getattr(request.app.state, "health_checks", {})
    failures.update({name: _failure(check) for name, check in checks.items()})
    for name, failure in failures.items():
        health.log.record(name, failure)
    states = {name: "ok" if failure is None else "failing" for name, failure in failures.items()}
    healthy = all(state == "ok" for state in states.values())
    body = {"status": "ok" if healthy else "failing", **states}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = getattr(request.app.state, "metrics_registry", REGISTRY)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
