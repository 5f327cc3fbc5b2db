"""Logs and metrics of a real `ringback serve` (JSON logs, no registrar): idle, it writes no INFO
line (APScheduler quieted); `/metrics` has the new families; refused webhooks (413, 401) are
counted; unknown event types share one label; the request id is echoed and in the log line."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from lab.ringback import RingbackService

pytestmark = pytest.mark.peers

IDLE_S = 10.0
UNKNOWN_TYPES = 50
REQUEST_ID = "e2e-req.42"
HARNESS_MARKER = "--- "
NEW_FAMILIES = (
    "ringback_build_info", "ringback_http_requests_total",
    "ringback_http_request_duration_seconds_bucket", "ringback_outbox_lag_seconds",
    "ringback_call_setup_seconds_count",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    svc = RingbackService(tmp_path_factory.mktemp("logs-metrics"), {"RINGBACK_LOG_FORMAT": "json"})
    try:
        yield svc.start()
    except BaseException:
        print(f"\n===== ringback log =====\n{svc.log_text()[-6000:]}")
        raise
    finally:
        svc.close()


def _log_entries(text: str) -> list[dict[str, Any]]:
    """Every line ringback wrote, each a JSON object (a line that is not fails the test); the
    harness's own markers (`--- start: ...`) left out."""
    return [json.loads(line) for line in text.splitlines()
            if line.strip() and not line.startswith(HARNESS_MARKER)]


def _post(service: RingbackService, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST to the webhook: the status and the response's X-Request-ID."""
    request = urllib.request.Request(f"{service.url}/webhooks/crm", data=body, method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("x-request-id", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-request-id", "")


def _metrics(service: RingbackService) -> str:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def _sample(metrics: str, name: str, labels: dict[str, str]) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_idle_service_writes_no_info_lines(service: RingbackService) -> None:
    before = len(service.log_text())
    time.sleep(IDLE_S)  # the ticks run: dispatch, outbox (each second), gauges, reaper
    idle = _log_entries(service.log_text()[before:])
    assert [entry for entry in idle if entry["level"] in ("DEBUG", "INFO")] == []
    started = _log_entries(service.log_text()[:before])
    assert any(entry["logger"] == "api.app" and entry["level"] == "INFO" for entry in started)
    assert not any(entry["logger"].startswith("apscheduler") and entry["level"] == "INFO"
                   for entry in started)


def test_metrics_have_the_new_families(service: RingbackService) -> None:
    service.get("/healthz")
    metrics = _metrics(service)
    for family in NEW_FAMILIES:
        assert f"\n{family}" in metrics, family
    assert "ringback_sip_registered" not in metrics  # no registrar, no registration to report
    version = _sample(metrics, "ringback_build_info", {"version": "0.1.0"})
    assert version == 1.0
    assert _sample(metrics, "ringback_outbox_lag_seconds", {}) is not None
    assert (_sample(metrics, "ringback_http_requests_total",
                    {"method": "GET", "route": "/healthz", "status": "2xx"}) or 0) >= 1


def test_refused_webhooks_are_counted_and_unknown_types_share_one_label(
    service: RingbackService,
) -> None:
    webhook = {"method": "POST", "route": "/webhooks/crm", "status": "4xx"}
    refused_before = _sample(_metrics(service), "ringback_http_requests_total", webhook) or 0
    too_large, _ = _post(service, b"[" + b" " * (300 * 1024) + b"]", {})
    unsigned, _ = _post(service, b"{}", {})
    assert (too_large, unsigned) == (413, 401)
    occurred = datetime.now(UTC).isoformat()
    for n in range(UNKNOWN_TYPES):
        status, body = service.post_event(
            {"id": f"evt-unknown-{n}", "type": f"custom.kind{n}", "occurred_at": occurred,
             "data": {}})
        assert (status, body["status"]) == (202, "ignored")
    metrics = _metrics(service)
    assert _sample(metrics, "ringback_http_requests_total", webhook) == refused_before + 2
    assert _sample(metrics, "ringback_webhooks_total",
                   {"type": "other", "result": "ignored"}) == UNKNOWN_TYPES
    types = {line.split('type="', 1)[1].split('"', 1)[0] for line in metrics.splitlines()
             if line.startswith("ringback_webhooks_total{")}
    assert types == {"other", "unverified"}


def test_request_id_is_echoed_and_in_the_json_log_line(service: RingbackService) -> None:
    before = len(service.log_text())
    assert _post(service, b"{}", {"X-Request-ID": REQUEST_ID}) == (401, REQUEST_ID)
    _, generated = _post(service, b"{}", {"X-Request-ID": "not sane!"})
    assert generated not in ("", "not sane!", REQUEST_ID)
    lines = _log_entries(service.log_text()[before:])
    refused = [entry for entry in lines if entry["message"].startswith("CRM webhook refused")]
    assert [entry.get("request_id") for entry in refused] == [
        REQUEST_ID, generated]

