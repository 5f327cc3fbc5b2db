"""The FastAPI app as documented: `/openapi.json` is the contract the service keeps, and `/docs`
works without the internet.

- Swagger UI (`/docs`) and ReDoc (`/redoc`) load their scripts from the pinned `fastapi-offline`
  package (1.7.7 ships Swagger UI 5.32.6, MIT), served by the app itself, not from a CDN.
- Every operation may answer 500 `internal-error` (`api.errors.SERVER_ERRORS`).
- Routes document their own errors with `api.errors.error_responses`, so FastAPI's `{detail}`
  422 schema never appears: errors are `{"error": {"code", "message"}}` everywhere.
- `/healthz` and `/metrics` build their responses by hand (a JSON status, Prometheus text);
  what they send is documented here, in `_HAND_MADE`.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.errors import SERVER_ERRORS

DESCRIPTION = """\
ringback takes the CRM's events (`POST /webhooks/crm`, signed with Standard Webhooks), places
the robot calls they call for, and reports every outcome back to the CRM.

The `/api/v1` routes take an API token (`Authorization: Bearer rb_...`, made with
`ringback token create --role admin|support|marketing`). Every error is
`{"error": {"code": "stable-id", "message": "..."}}`; act on the code, show the message.
"""

_HEALTH = {
    "description": '"ok" or "failing" for the database and for each other check',
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["status", "database"],
        "properties": {"status": {"enum": ["ok", "failing"]}},
        "additionalProperties": {"enum": ["ok", "failing"]},
        "example": {"status": "ok", "database": "ok", "sip": "ok", "scheduler": "ok"},
    }}},
}

_HAND_MADE: dict[str, dict[str, Any]] = {
    "/healthz": {
        "summary": "Health, for load balancers",
        "description": (
            "Proves the database takes a write (within a few seconds) and asks every other "
            "check (the SIP registration, the scheduler). 200 when all pass, 503 naming each "
            "failing part otherwise. `HEAD /healthz` answers the same status without a body."
        ),
        "responses": {"200": _HEALTH, "503": {**_HEALTH, "description": "a part is failing"}},
    },
    "/metrics": {
        "summary": "Metrics, for Prometheus",
        "description": "Counters, gauges and histograms in the Prometheus text format.",
        "responses": {"200": {
            "description": "the Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }},
    },
}


def create_app(
    *,
    title: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    app = FastAPIOffline(
        title=title, version=version, lifespan=lifespan, description=DESCRIPTION,
        responses=SERVER_ERRORS,
    )
    # FastAPI's documented way to extend its schema: replace `app.openapi`.
    app.openapi = partial(_contract, app)  # type: ignore[method-assign]
    return app


def _contract(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)  # generated once and kept in app.openapi_schema
    for path, documented in _HAND_MADE.items():
        operation = schema["paths"][path]["get"]
        operation["summary"] = documented["summary"]
        operation["description"] = documented["description"]
        operation["responses"].update(documented["responses"])
    return schema


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its `$defs` written out where they are used, so that it can
    sit inside an operation (in OpenAPI, `#/$defs/...` would point at the document's root).
    The models must not refer to themselves."""
    definitions: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        local = isinstance(ref, str) and ref.startswith("#/$defs/")
        resolved = {key: resolve(value) for key, value in node.items()
                    if key != "$defs" and not (local and key == "$ref")}
        if local:
            return {**resolve(definitions[str(ref).removeprefix("#/$defs/")]), **resolved}
        return resolved

    inlined: dict[str, Any] = resolve(schema)
    return inlined
