"""The pre-dial CRM check against the stand-in CRM over real HTTP; the stand-in verifies the
signatures with `standardwebhooks` itself."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from campaigns.crm_check import (
    NOT_WANTED,
    UNKNOWN_CLIENT,
    WANTED,
    CheckVerdict,
    CrmCheck,
    UnavailablePolicy,
)
from infra.settings import DEV_OUTBOUND_SECRET
from lab.crm_receiver import CheckAnswer, CrmReceiver

SECRET = DEV_OUTBOUND_SECRET  # what the shared `crm` fixture (tests/conftest.py) verifies
OTHER_SECRET = "whsec_" + "YW5vdGhlci1zZWNyZXQtb2YtMzItYnl0ZXMtbG9uZyEh"
TIMEOUT_S = 1.0  # the slow answers below wait far longer: 30 s, cut short when the test ends
POSTPONE_S = 42.0
SLOW = CheckAnswer.verdict(True, delay_s=30)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def checker(crm: CrmReceiver, http: httpx.AsyncClient, *, url: str | None = None,
            secret: str = SECRET,
            policy: UnavailablePolicy = UnavailablePolicy.CALL) -> CrmCheck:
    return CrmCheck(url or crm.check_url, secret, http, timeout_s=TIMEOUT_S,
                    on_unavailable=policy, postpone_s=POSTPONE_S)


async def test_a_wanted_call_is_dialed_and_the_request_is_signed(
    crm: CrmReceiver, http: httpx.AsyncClient
) -> None:
    crm.answer_check("client-1", CheckAnswer.verdict(True))
    verdict = await checker(crm, http).still_wanted("client-1", "warning", "job-7")
    assert verdict == CheckVerdict(True, WANTED, "crm")
    [request] = crm.checks
    assert request.verified
    assert request.client_id == "client-1"
    assert request.query == {"kind": ["warning"], "job_id": ["job-7"]}
    assert request.headers["webhook-id"].startswith("chk_")


async def test_a_call_no_longer_wanted_keeps_the_crm_reason(
    crm: CrmReceiver, http: httpx.AsyncClient
) -> None:
    crm.answer_check("client-1", CheckAnswer.verdict(False, "topped up\n at 12:01"))
    crm.answer_check("client-2", CheckAnswer.verdict(False))
    check = checker(crm, http)
    assert await check.still_wanted("client-1", "warning", "job-7") == CheckVerdict(
        False, "topped up at 12:01", "crm")
    assert await check.still_wanted("client-2", "warning", "job-8") == CheckVerdict(
        False, NOT_WANTED, "crm")


async def test_a_client_unknown_to_the_crm_is_not_called(
    crm: CrmReceiver, http: httpx.AsyncClient
) -> None:
    verdict = await checker(crm, http).still_wanted("client-404", "warning", "job-7")
    assert verdict == CheckVerdict(False, UNKNOWN_CLIENT, "crm")
    assert [(r.client_id, r.status, r.verified) for r in crm.checks] == [
        ("client-404", 404, True)]


async def test_special_characters_are_quoted_and_still_signed(
    crm: CrmReceiver, http: httpx.AsyncClient
) -> None:
    client_id = "acme/ü 42?&#%"
    crm.answer_check(client_id, CheckAnswer.verdict(False, "paid"))
    crm.answer_check("acme", CheckAnswer.verdict(True))  # what a "/" left raw would reach
    verdict = await checker(crm, http).still_wanted(client_id, "warning&x", "job 1/2")
    assert verdict == CheckVerdict(False, "paid", "crm")
    [request] = crm.checks
    assert request.target.startswith("/crm/clients/acme%2F%C3%BC%2042%3F%26%23%25/call-check?")
    assert (request.client_id, request.verified) == (client_id, True)
    assert request.query == {"kind": ["warning&x"], "job_id": ["job 1/2"]}


async def test_the_templates_own_query_is_kept(crm: CrmReceiver, http: httpx.AsyncClient) -> None:
    crm.answer_check("c1", CheckAnswer.verdict(True))
    check = checker(crm, http, url=crm.check_url + "?token=s3cret")
    assert (await check.still_wanted("c1", "warning", "j1")).call
    [request] = crm.checks
    assert request.query == {"token": ["s3cret"], "kind": ["warning"], "job_id": ["j1"]}
    assert request.verified


async def test_another_secret_is_refused_by_the_crm(
    crm: CrmReceiver, http: httpx.AsyncClient
) -> None:
    crm.answer_check("c1", CheckAnswer.verdict(False, "paid"))
    verdict = await checker(crm, http, secret=OTHER_SECRET).still_wanted("c1", "warning", "j1")
    assert verdict == CheckVerdict(True, "CRM check unavailable (HTTP 401): calling anyway",
                                   "unavailable")
    assert [(r.verified, r.status) for r in crm.checks] == [(False, 401)]


UNUSABLE = {
    "slow": SLOW,
    "500": CheckAnswer(500, b'{"call": false}'),
    "503": CheckAnswer(503, b"maintenance"),
    "400": CheckAnswer(400, b'{"call": false}'),
    "403": CheckAnswer(403, b'{"call": false}'),
    "204": CheckAnswer(204, b""),
    "302": CheckAnswer(302, b""),
    "garbage": CheckAnswer(200, b"<html>oops"),
    "not utf-8": CheckAnswer(200, b'{"call": "\xff"}'),
    "a list": CheckAnswer(200, b"[true]"),
    "call a string": CheckAnswer(200, b'{"call": "false"}'),
    "call a number": CheckAnswer(200, b'{"call": 0}'),
    "no call": CheckAnswer(200, b'{"reason": "paid"}'),
    "reason a number": CheckAnswer(200, b'{"call": false, "reason": 5}'),
    "too long": CheckAnswer(200, b'{"call": false, "reason": "' + b"x" * 20_000 + b'"}'),
}


@pytest.mark.parametrize("answer", UNUSABLE.values(), ids=UNUSABLE.keys())
async def test_an_unusable_answer_leaves_the_crm_unavailable(
    crm: CrmReceiver, http: httpx.AsyncClient, answer: CheckAnswer
) -> None:
    crm.answer_check("c1", answer)
    verdict = await checker(crm, http).still_wanted("c1", "warning", "j1")
    assert (verdict.call, verdict.source, verdict.postpone_s) == (True, "unavailable", None)
    assert verdict.reason.startswith("CRM check unavailable (")
    assert [r.verified for r in crm.checks] == [True]


@pytest.mark.parametrize("fault", ["slow", "down", "500"])
@pytest.mark.parametrize(("policy", "call", "postpone_s"), [
    (UnavailablePolicy.CALL, True, None),
    (UnavailablePolicy.SKIP, False, None),
    (UnavailablePolicy.POSTPONE, False, POSTPONE_S),
])
async def test_the_policy_decides_when_the_crm_is_unavailable(
    crm: CrmReceiver, http: httpx.AsyncClient, fault: str, policy: UnavailablePolicy,
    call: bool, postpone_s: float | None
) -> None:
    crm.answer_check("c1", SLOW if fault == "slow" else CheckAnswer(500, b"boom"))
    check = checker(crm, http, policy=policy)
    if fault == "down":
        crm.stop()  # the port is closed
    verdict = await check.still_wanted("c1", "warning", "j1")
    assert (verdict.call, verdict.source, verdict.postpone_s) == (call, "unavailable", postpone_s)
    assert verdict.postponed is (postpone_s is not None)


async def test_faults_are_logged_once_without_the_url_or_the_secret(
    crm: CrmReceiver, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    check = checker(crm, http, url=crm.check_url + "?token=s3cret")
    crm.stop()
    with caplog.at_level(logging.INFO, logger="campaigns.crm_check"):
        await check.still_wanted("client-77", "warning", "j1")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "client-77" in message and "ConnectError" in message
    assert "s3cret" not in message and str(crm.port) not in message
    assert SECRET.removeprefix("whsec_") not in message


@pytest.mark.parametrize("timeout_s", [0.0, 0.05, 10.5])
def test_the_timeout_is_bounded(http: httpx.AsyncClient, timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        CrmCheck("http://crm.test/{client_id}", SECRET, http, timeout_s=timeout_s)


def documented_verifier() -> Callable[[str, str, dict[str, str]], bool]:
    """`verify_check` as docs/crm-contract.md shows it."""
    text = (Path(__file__).parents[2] / "docs" / "crm-contract.md").read_text()
    code = text.split("<!-- verify-check -->\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    verify: Callable[[str, str, dict[str, str]], bool] = namespace["verify_check"]
    return verify


async def test_the_documented_verification_accepts_ringbacks_requests_only(
    crm: CrmReceiver, http: httpx.AsyncClient
) -> None:
    verify_check = documented_verifier()
    crm.answer_check("acme/7 ü", CheckAnswer.verdict(True))
    patient = CrmCheck(crm.check_url, SECRET, http, timeout_s=5.0)  # a busy machine: no race
    assert (await patient.still_wanted("acme/7 ü", "warning", "job 1")).source == "crm"
    [request] = crm.checks
    assert verify_check(SECRET, request.target, request.headers)
    assert not verify_check(OTHER_SECRET, request.target, request.headers)
    assert not verify_check(SECRET, request.target.replace("job+1", "job+2"), request.headers)
    assert not verify_check(SECRET, unquote(request.target), request.headers)  # decoded: no
    assert not verify_check(SECRET, request.target, {})
