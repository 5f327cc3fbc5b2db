"""`POST /webhooks/crm`: the CRM's events, signed with Standard Webhooks.

Only a plain JSON body is taken (`content-type: application/json`, UTF-8, no content-encoding):
anything else is 415 before the body is read. The signature is checked next, on the raw bytes,
before anything is parsed. We check the headers ourselves and let `standardwebhooks` compute the
HMAC: its `Webhook.verify` hard-codes a 5-minute tolerance and lets malformed headers escape as
ValueError / binascii.Error.
"""

import base64
import binascii
import hmac
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from standardwebhooks import Webhook

from api.errors import ApiError, error_responses
from api.openapi import inline_refs
from campaigns.events import (
    MAX_NESTING,
    Envelope,
    EventRejected,
    envelope_json_schema,
    parse_event,
)
from campaigns.intake import Intake, IntakeResult
from infra.db import DatabaseThreads, utcnow
from infra.metrics import Metrics
from infra.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter()

MAX_BODY_BYTES = 256 * 1024
MAX_MESSAGE_ID_LENGTH = 256
_TIMESTAMP = re.compile(r"[0-9]{1,11}")  # up to year 5138: no overflow
_SIGNATURE_BYTES = 32  # HMAC-SHA256
JSON_MEDIA_TYPE = "application/json"


class SignatureInvalid(Exception):
    pass


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: timedelta,
    now: datetime,
) -> None:
    """Raise `SignatureInvalid` unless `body` carries a valid, fresh Standard Webhooks
    signature (a `v1` HMAC-SHA256 over "id.timestamp.body") made with `secret`."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise SignatureInvalid("webhook-id, webhook-timestamp and webhook-signature are required")
    if len(msg_id) > MAX_MESSAGE_ID_LENGTH or not msg_id.isprintable():
        raise SignatureInvalid("webhook-id is not a valid message id")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureInvalid("webhook-timestamp must be whole seconds since the Unix epoch")
    sent_at = datetime.fromtimestamp(int(stamp), UTC)
    if abs(now - sent_at) > tolerance:
        raise SignatureInvalid(
            f"webhook-timestamp is more than {tolerance.total_seconds():.0f} s from our clock"
        )
    offered = _v1_signatures(signatures)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureInvalid("the body is not UTF-8, so it cannot be verified") from None
    expected = base64.b64decode(Webhook(secret).sign(msg_id, sent_at, text).split(",", 1)[1])
    if not any(hmac.compare_digest(expected, signature) for signature in offered):
        raise SignatureInvalid("no signature matches")


def _v1_signatures(header: str) -> list[bytes]:
    """The `v1` signatures of a space-separated "version,base64" list; other versions are
    skipped, anything malformed rejects the whole header."""
    found = []
    for item in header.split(" "):
        version, comma, value = item.partition(",")
        if not (version and comma and value):
            raise SignatureInvalid('webhook-signature must be a list of "version,signature"')
        if version != "v1":
            continue
        try:
            signature = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise SignatureInvalid("a v1 signature is not base64") from None
        if len(signature) != _SIGNATURE_BYTES:
            raise SignatureInvalid("a v1 signature is not 32 bytes")
        found.append(signature)
    if not found:
        raise SignatureInvalid("no v1 signature")
    return found


def _media_type_problem(headers: Mapping[str, str]) -> tuple[str, dict[str, str]] | None:
    """Why the body is not taken as an event, and the header that says what is (for the 415),
    unless it is declared `application/json` (optionally `; charset=utf-8`) with no
    content-encoding: form, XML and text bodies are not events, and a compressed body is not
    what the CRM signed. None when it is."""
    media_type, *parameters = headers.get("content-type", "").split(";")
    charsets = [_charset(parameter) for parameter in parameters]
    if media_type.strip().lower() != JSON_MEDIA_TYPE or any(c != "utf-8" for c in charsets):
        return ("send the event as content-type: application/json (UTF-8)",
                {"Accept": JSON_MEDIA_TYPE})
    if headers.get("content-encoding", "identity").strip().lower() != "identity":
        return "send the event uncompressed", {"Accept-Encoding": "identity"}
    return None


def _charset(parameter: str) -> str | None:
    """The charset a media type parameter names (lowercase, unquoted), None for another one."""
    name, _, value = parameter.partition("=")
    return value.strip().strip('"').lower() if name.strip().lower() == "charset" else None


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> ApiError:
    return ApiError(413, "payload-too-large", f"events are limited to {MAX_BODY_BYTES} bytes")


class WebhookAck(BaseModel):
    status: Literal["accepted", "ignored", "duplicate"]
    id: str


def _header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "description": description,
            "schema": {"type": "string", **schema}}


_REQUEST = {
    "parameters": [
        _header("webhook-id", "the message's unique id (the same when it is sent again)",
                {"maxLength": MAX_MESSAGE_ID_LENGTH}),
        _header("webhook-timestamp", "when it was signed: whole seconds since the Unix epoch, "
                "within the tolerance of our clock", {"pattern": f"^{_TIMESTAMP.pattern}$"}),
        _header("webhook-signature", "space-separated `v1,<base64 HMAC-SHA256>` of "
                '"id.timestamp.body", made with the shared secret', {}),
    ],
    "requestBody": {
        "required": True,
        "description": f"one event: UTF-8 JSON, at most {MAX_BODY_BYTES} bytes, arrays and "
                       f"objects nested at most {MAX_NESTING} deep",
        "content": {JSON_MEDIA_TYPE: {"schema": inline_refs(envelope_json_schema())}},
    },
}

_DESCRIPTION = """One CRM event `{"id", "type", "occurred_at", "data"}`, signed with
[Standard Webhooks](https://www.standardwebhooks.com/). The signature is verified on the raw
body before anything of it is read. `call.completed` queues a CSAT survey call and
`client.opted_out` puts the client on the do-not-call list; other types are acknowledged
(`ignored`) and recorded.

An event id is applied once: a repeat (a retry) is answered 200 `duplicate`. A refused event
(4xx) is stored nowhere, not even in part; a 5xx may be retried as it is.
"""


@router.post(
    "/webhooks/crm",
    status_code=202,
    response_model=WebhookAck,
    summary="Receive a CRM event",
    description=_DESCRIPTION,
    response_description="applied (`accepted`), or a type ringback does not act on (`ignored`)",
    responses={
        200: {"model": WebhookAck, "description": "seen before and not applied again "
                                                  "(`duplicate`)"},
        **error_responses({
            401: "`invalid-signature`: the webhook-* headers are missing or malformed, the "
                 "timestamp is too far from our clock, or no signature matches",
            413: f"`payload-too-large`: the body is over {MAX_BODY_BYTES} bytes",
            415: "`unsupported-media-type`: not `application/json` in UTF-8, or compressed",
            422: "`malformed-json`: the body is not JSON; `invalid-event`: not a valid event "
                 "(the message names the field); `invalid-phone`: a phone number ringback "
                 "cannot call",
        }),
    },
    openapi_extra=_REQUEST,
)
async def crm_webhook(request: Request) -> JSONResponse:
    _refuse_unless_plain_json(request)
    body = await _read_body(request)
    _verify(request, body)
    intake: Intake = request.app.state.intake
    event = _parse(request, body, intake.default_region)
    database: DatabaseThreads = request.app.state.database
    result = await database.run(intake.handle, event)
    _count(request, event.type, result.value)
    status = 200 if result is IntakeResult.DUPLICATE else 202
    return JSONResponse({"status": result.value, "id": event.id}, status_code=status)


def _refuse_unless_plain_json(request: Request) -> None:
    problem = _media_type_problem(request.headers)
    if problem is not None:
        message, headers = problem
        log.warning("CRM webhook refused: %s", message)
        _count(request, "unverified", "unsupported-media-type")
        raise ApiError(415, "unsupported-media-type", message, headers)


def _verify(request: Request, body: bytes) -> None:
    settings: Settings = request.app.state.settings
    try:
        verify_signature(
            settings.crm_webhook_secret.get_secret_value(),
            body,
            request.headers,
            tolerance=timedelta(seconds=settings.crm_webhook_tolerance_s),
            now=utcnow(),
        )
    except SignatureInvalid as exc:
        log.warning("CRM webhook refused: %s", exc)
        _count(request, "unverified", "invalid-signature")
        raise ApiError(401, "invalid-signature", str(exc)) from None


def _parse(request: Request, body: bytes, default_region: str) -> Envelope:
    try:
        return parse_event(body, default_region)
    except EventRejected as exc:
        log.warning("CRM event refused (%s): %s", exc.code, exc.message)
        _count(request, "unparsed", exc.code)
        raise ApiError(422, exc.code, exc.message) from None


# The event types of the contract with the CRM and the labels of refused webhooks: any other
# type a CRM sends is counted as "other", so the label's values stay bounded.
_COUNTED_TYPES = frozenset({
    "balance.low", "campaign.stopping", "balance.topped_up", "call.completed", "call.missed",
    "callback.requested", "client.opted_out", "unverified", "unparsed",
})


def _count(request: Request, event_type: str, result: str) -> None:
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        label = event_type if event_type in _COUNTED_TYPES else "other"
        metrics.webhooks.labels(type=label, result=result).inc()
