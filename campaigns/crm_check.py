"""The pre-dial check: just before a warning call, ask the CRM whether it is still wanted (the
client may have topped up a minute ago). docs/crm-contract.md, "Pre-dial check".

`GET <template with the URL-quoted client id>?kind=...&job_id=...`, signed with Standard
Webhooks over the request target (path and query, exactly as sent). The CRM answers 200
`{"call": true}` or `{"call": false, "reason": "..."}`; 404 means it does not know the client:
not wanted. Anything else (no answer within the timeout, a refused connection, another status, a
reply that is not that JSON) leaves the CRM unavailable and `UnavailablePolicy` decides. Network
faults are never raised; each check logs one line, without the URL (it may hold a token).
"""

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, assert_never
from urllib.parse import quote

import httpx
from standardwebhooks import Webhook

from campaigns.signing import signature_headers
from infra.settings import UnavailablePolicy

__all__ = ["CheckVerdict", "CrmCheck", "UnavailablePolicy"]

log = logging.getLogger(__name__)

MIN_TIMEOUT_S = 0.1
MAX_TIMEOUT_S = 10.0
MAX_REPLY_BYTES = 16 * 1024
REASON_CHARS = 200
UNKNOWN_CLIENT = "client unknown to the CRM"
NOT_WANTED = "the CRM said not to call"
WANTED = "the CRM wants the call"


@dataclass(frozen=True)
class CheckVerdict:
    call: bool  # dial now
    reason: str  # for people: the CRM's reason, or why the CRM was not asked successfully
    source: Literal["crm", "unavailable"]
    postpone_s: float | None = None  # set (call is False): not now, ask again after this long

    @property
    def postponed(self) -> bool:
        return self.postpone_s is not None


class _Unavailable(Exception):
    """The CRM answered, but not usably; the message says how (never the URL)."""


class CrmCheck:
    def __init__(
        self,
        url_template: str,
        secret: str,
        http: httpx.AsyncClient,
        *,
        timeout_s: float = 2.0,
        on_unavailable: UnavailablePolicy = UnavailablePolicy.CALL,
        postpone_s: float = 300.0,
    ) -> None:
        if not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be {MIN_TIMEOUT_S}-{MAX_TIMEOUT_S} s")
        if postpone_s <= 0:
            raise ValueError("postpone_s must be above 0")
        self._template = url_template
        self._webhook = Webhook(secret)
        self._http = http
        self._timeout_s = timeout_s
        self._policy = on_unavailable
        self._postpone_s = postpone_s
        self.url_for("client", "kind", "job")  # a bad template fails here, not at each call

    def url_for(self, client_id: str, kind: str, job_id: str) -> httpx.URL:
        """The template with the client id percent-encoded (UTF-8; "/" too), plus the query."""
        url = httpx.URL(self._template.format(client_id=quote(client_id, safe="")))
        return url.copy_merge_params({"kind": kind, "job_id": job_id})

    async def still_wanted(self, client_id: str, kind: str, job_id: str) -> CheckVerdict:
        """Ask the CRM; a fault gives the policy's verdict instead (never raised)."""
        try:
            async with asyncio.timeout(self._timeout_s):  # the whole exchange, not each read
                verdict = await self._ask(self.url_for(client_id, kind, job_id))
        except _Unavailable as exc:
            return self._unavailable(client_id, str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return self._unavailable(client_id, f"no answer within {self._timeout_s:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return self._unavailable(client_id, type(exc).__name__)
        log.info("CRM check for client %r: %s", client_id,
                 "call" if verdict.call else f"do not call ({verdict.reason})")
        return verdict

    async def _ask(self, url: httpx.URL) -> CheckVerdict:
        target = url.raw_path.decode("ascii")  # path and query, as on the request line
        headers = {
            "accept": "application/json",
            **signature_headers(self._webhook, "chk_" + uuid.uuid4().hex, datetime.now(UTC),
                                target),
        }
        async with self._http.stream("GET", url, headers=headers,
                                     timeout=self._timeout_s) as response:
            if response.status_code == 404:
                return CheckVerdict(False, UNKNOWN_CLIENT, "crm")
            if not response.is_success:
                raise _Unavailable(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    raise _Unavailable(f"reply over {MAX_REPLY_BYTES} bytes")
        return _verdict(bytes(body))

    def _unavailable(self, client_id: str, why: str) -> CheckVerdict:
        reason = f"CRM check unavailable ({why})"
        match self._policy:
            case UnavailablePolicy.CALL:
                verdict = CheckVerdict(True, f"{reason}: calling anyway", "unavailable")
            case UnavailablePolicy.SKIP:
                verdict = CheckVerdict(False, f"{reason}: not calling", "unavailable")
            case UnavailablePolicy.POSTPONE:
                verdict = CheckVerdict(False, f"{reason}: asking again in {self._postpone_s:g} s",
                                       "unavailable", self._postpone_s)
            case _:
                assert_never(self._policy)
        log.warning("CRM check for client %r: %s", client_id, verdict.reason)
        return verdict


def _verdict(body: bytes) -> CheckVerdict:
    try:
        answer = json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise _Unavailable("reply is not JSON") from None
    match answer:
        case {"call": True}:  # True and False match by identity: 1 and 0 do not
            return CheckVerdict(True, WANTED, "crm")
        case {"call": False, "reason": str(reason)}:
            return CheckVerdict(False, " ".join(reason.split())[:REASON_CHARS] or NOT_WANTED,
                                "crm")
        case {"call": False} if answer.get("reason") is None:
            return CheckVerdict(False, NOT_WANTED, "crm")
    raise _Unavailable('reply is not {"call": true} or {"call": false, "reason": "..."}')
