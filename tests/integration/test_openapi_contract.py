"""`/openapi.json` is the contract the service keeps: schemathesis generates requests from it (valid
and invalid ones, boundary values) against a real `ringback serve`, with an admin token for the
`/api/v1` routes and webhook bodies signed as the CRM signs them, so that they reach the event
parser and not only the signature check. Every response must be documented (status, content
type, body schema) and none may be a 5xx.

Left out: schemathesis's `positive_data_acceptance`. A list's cursor is opaque (any string fits
its schema, only those the list gave out are taken) and a schema-valid event may still name a
phone number nobody can call: both are 422 by design, documented as such.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from playwright.sync_api import Browser
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.tokens import Role, create_token
from infra.db import make_engine, make_sessions
from infra.settings import DEV_WEBHOOK_SECRET
from lab.ringback import RingbackService, sign

WEBHOOK = "/webhooks/crm"
EXAMPLES = 300  # per generation mode, over every operation
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    # A survey that falls due would dial: only ever to a closed port on this machine.
    svc = RingbackService(tmp_path_factory.mktemp("contract"),
                          {"RINGBACK_SIP_DIAL_TEMPLATE": "sip:{digits}@127.0.0.1:9"})
    try:
        yield svc.start()
    finally:
        svc.close()


@pytest.fixture(scope="module")
def admin_token(service: RingbackService) -> str:
    engine = make_engine(f"sqlite:///{service.database}")
    try:
        with make_sessions(engine).begin() as session:
            return create_token(session, Role.ADMIN, "contract test")
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_its_contract(
    service: RingbackService, admin_token: str, mode: GenerationMode
) -> None:
    contract = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    # Configured, not added to each call: schemathesis then knows the requests carry it (and
    # still drops it where it checks that a route refuses requests without it).
    contract.config.update(headers={"Authorization": f"Bearer {admin_token}"})

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=contract.as_strategy(mode))
    def keeps_its_contract(case: schemathesis.Case) -> None:
        extra: dict[str, Any] = {}
        if case.path == WEBHOOK and isinstance(case.body, dict):
            extra["data"] = signed_body(case)
        case.call_and_validate(excluded_checks=[positive_data_acceptance], **extra)

    keeps_its_contract()


def test_the_schemathesis_command_finds_nothing(
    service: RingbackService, admin_token: str, tmp_path: Path
) -> None:
    """Its own run too, for what the test above does not do: boundary values of every
    parameter, missing headers, methods a path does not allow (and its `Allow` header). The
    webhook is unsigned here (401). `filter_too_much`: the event schema's patterns make
    hypothesis discard many drafts, which is slow, not wrong."""
    done = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{service.url}/openapi.json",
         "--header", f"Authorization: Bearer {admin_token}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--suppress-health-check", "filter_too_much",
         "--max-examples", "50", "--seed", "1", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"Tested:\s+34\b", done.stdout), done.stdout[-3000:]  # every operation


def signed_body(case: schemathesis.Case) -> bytes:
    """The body as JSON bytes, with valid webhook-* headers for exactly these bytes."""
    body = json.dumps(case.body).encode()
    case.headers = {**(case.headers or {}),
                    **sign(body, "msg-contract", DEV_WEBHOOK_SECRET)}
    return body


def test_the_contract_documents_every_error_as_the_server_sends_it(
    service: RingbackService,
) -> None:
    status, document = service.get("/openapi.json")
    assert status == 200
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    error = {"$ref": "#/components/schemas/ErrorBody"}
    expected = {  # the errors each operation must document (any other: at least 500)
        ("/webhooks/crm", "post"): {"401", "413", "415", "422", "500"},
        ("/api/v1/callback-tasks", "get"): {"401", "403", "422", "500"},
        ("/api/v1/callback-tasks/{task_id}", "get"): {"401", "403", "404", "422", "500"},
        **{(f"/api/v1/callback-tasks/{{task_id}}/{change}", "post"):
           {"401", "403", "404", "409", "422", "500"} for change in ("claim", "release")},
        **{(f"/api/v1/callback-tasks/{{task_id}}/{change}", "post"):
           {"400", "401", "403", "404", "409", "422", "500"}
           for change in ("notes", "attempts", "resolve", "cancel", "reassign")},
        ("/api/v1/outbox", "get"): {"401", "403", "422", "500"},
        ("/api/v1/jobs", "get"): {"401", "403", "422", "500"},
        ("/api/v1/calls", "get"): {"401", "403", "422", "500"},
        ("/api/v1/reports/warnings", "get"): {"401", "403", "422", "500"},
        ("/api/v1/reports/callbacks", "get"): {"401", "403", "422", "500"},
        ("/healthz", "get"): {"500"},
        ("/metrics", "get"): {"500"},
    }
    operations = {(path, method): operation for path, item in document["paths"].items()
                  for method, operation in item.items()}
    assert set(expected) <= set(operations)
    for key, operation in operations.items():
        assert operation["summary"] and operation["description"], key
        errors = {code for code in operation["responses"] if code >= "400"} - {"503"}
        assert errors >= expected.get(key, {"500"}), key
        for status_code in errors:
            content = operation["responses"][status_code]["content"]
            assert content == {"application/json": {"schema": error}}, (key, status_code)
    assert set(operations["/metrics", "get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert set(operations["/healthz", "get"]["responses"]) == {"200", "503", "500"}
    webhook = operations["/webhooks/crm", "post"]
    body_schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert {branch["properties"]["type"].get("const") for branch in body_schema["anyOf"]} == {
        "call.completed", "client.opted_out", "balance.low", "campaign.stopping",
        "balance.topped_up", "call.missed", "callback.requested",
        None,  # None: any other type, acknowledged
    }
    assert {parameter["name"] for parameter in webhook["parameters"]} == {
        "webhook-id", "webhook-timestamp", "webhook-signature",
    }


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_service_itself(
    service: RingbackService, page: str
) -> None:
    with urllib.request.urlopen(f"{service.url}{page}", timeout=10) as response:
        html = response.read().decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith(".js") for asset in assets), html
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        with urllib.request.urlopen(f"{service.url}{asset}", timeout=10) as response:
            assert response.status == 200 and response.read(), asset


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_render_in_a_real_browser_from_the_service_alone(
    service: RingbackService, browser: Browser, page: str
) -> None:
    """Chromium renders the API docs with nothing fetched from anywhere but the service: the
    page's Content-Security-Policy stops what its scripts would fetch elsewhere (ReDoc's bundle
    asks a CDN for a logo) before it leaves the browser."""
    tab = browser.new_page()
    asked: list[str] = []
    blocked: dict[str, str] = {}
    tab.on("request", lambda request: asked.append(request.url))
    tab.on("requestfailed", lambda request: blocked.update({request.url: request.failure or ""}))
    try:
        tab.goto(f"{service.url}{page}", wait_until="networkidle")
        rendered = ".opblock" if page == "/docs" else "[data-section-id]"
        tab.wait_for_selector(rendered, timeout=20_000)
        assert "/webhooks/crm" in tab.content()
    finally:
        tab.close()
    elsewhere = [url for url in asked if not url.startswith((service.url, "blob:"))]
    assert all(blocked.get(url) == "csp" for url in elsewhere), (elsewhere, blocked)
