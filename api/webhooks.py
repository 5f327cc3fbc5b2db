"""`POST /webhooks/crm`: the CRM's events, signed with Standard Webhooks.

The signature is checked first, on the raw bytes, before anything is parsed. We check the
headers ourselves and let `standardwebhooks` compute the HMAC: its `Webhook.verify` hard-codes a
5-minute tolerance and lets malformed headers escape as ValueError / binascii.Error.
"""

import base64
import binascii
import hmac
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook

from api.errors import ApiError
from campaigns.events import EventRejected, parse_event
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


@router.post("/webhooks/crm", status_code=202)
async def crm_webhook(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    intake: Intake = request.app.state.intake
    body = await _read_body(request)
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
    try:
        event = parse_event(body, intake.default_region)
    except EventRejected as exc:
        log.warning("CRM event refused (%s): %s", exc.code, exc.message)
        _count(request, "unparsed", exc.code)
        raise ApiError(422, exc.code, exc.message) from None
    database: DatabaseThreads = request.app.state.database
    result = await database.run(intake.handle, event)
    _count(request, event.type, result.value)
    status = 200 if result is IntakeResult.DUPLICATE else 202
    return JSONResponse({"status": result.value, "id": event.id}, status_code=status)


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
