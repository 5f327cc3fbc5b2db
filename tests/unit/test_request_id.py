"""The request-id middleware in process: the id is taken when sane or made, echoed, in the log
lines of the request; every response is counted by route template and status class, and timed."""

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.errors import ApiError, install_error_handlers
from api.request_id import MAX_LENGTH, RequestIdMiddleware
from infra.logs import JsonFormatter
from infra.metrics import Metrics

log = logging.getLogger("tests.request_id")


def _app(metrics: Metrics) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        log.info("item %d asked", item_id)
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.post("/big")
    async def big() -> None:
        raise ApiError(413, "payload-too-large", "too large")

    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.state.metrics = metrics
    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
async def client(metrics: Metrics) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(metrics), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        log.removeHandler(handler)


async def test_a_sane_request_id_is_echoed_and_in_the_log_lines_of_its_request(
    client: httpx.AsyncClient, log_lines: io.StringIO,
) -> None:
    response = await client.get("/items/7", headers={"X-Request-ID": "lb-4f2a:9/x+y=_.z"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "lb-4f2a:9/x+y=_.z"
    log.info("after the request")
    inside, after = (json.loads(line) for line in log_lines.getvalue().splitlines())
    assert (inside["message"], inside["request_id"]) == ("item 7 asked", "lb-4f2a:9/x+y=_.z")
    assert "request_id" not in after


@pytest.mark.parametrize("given", [
    None, "", "two words", "quote\"d", "a" * (MAX_LENGTH + 1), "ünïcode".encode(), "line\tbreak",
])
async def test_an_absent_or_insane_request_id_is_replaced_by_a_new_one(
    client: httpx.AsyncClient, log_lines: io.StringIO, given: str | bytes | None,
) -> None:
    headers = {} if given is None else {"X-Request-ID": given}
    first = await client.get("/items/1", headers=headers)
    second = await client.get("/items/2", headers=headers)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert ids[0] != ids[1]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids)
    logged = [json.loads(line)["request_id"] for line in log_lines.getvalue().splitlines()]
    assert logged == ids


async def test_the_longest_sane_request_id_is_kept(client: httpx.AsyncClient) -> None:
    rid = "r" * MAX_LENGTH
    assert (await client.get("/items/1", headers={"X-Request-ID": rid})).headers[
        "x-request-id"] == rid


def _requests(metrics: Metrics, method: str, route: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "ringback_http_requests_total", {"method": method, "route": route, "status": status})


async def test_every_response_is_counted_by_route_template_and_status_class(
    client: httpx.AsyncClient, metrics: Metrics,
) -> None:
    for path in ("/items/1", "/items/2", "/items/x"):
        await client.get(path)
    boom = await client.get("/boom")
    big = await client.post("/big")
    await client.get("/nowhere/12345")
    await client.request("BREW", "/items/1")
    assert boom.status_code == 500
    assert big.status_code == 413
    assert _requests(metrics, "GET", "/items/{item_id}", "2xx") == 2
    assert _requests(metrics, "GET", "/items/{item_id}", "4xx") == 1  # 422
    assert _requests(metrics, "GET", "/boom", "5xx") == 1
    assert _requests(metrics, "POST", "/big", "4xx") == 1
    assert _requests(metrics, "GET", "unmatched", "4xx") == 1
    assert _requests(metrics, "OTHER", "/items/{item_id}", "4xx") == 1  # 405
    durations = metrics.registry.get_sample_value(
        "ringback_http_request_duration_seconds_count", {"route": "/items/{item_id}"})
    assert durations == 4
    routes = {sample.labels["route"]
              for family in metrics.registry.collect() if family.name == "ringback_http_requests"
              for sample in family.samples}
    assert routes == {"/items/{item_id}", "/boom", "/big", "unmatched"}
