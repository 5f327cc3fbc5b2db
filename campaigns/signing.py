"""Standard Webhooks signatures on what ringback sends the CRM: the outbox's POSTs (over the
body) and the pre-dial check's GETs (over the request target). docs/crm-contract.md."""

from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook


def signature_headers(webhook: Webhook, msg_id: str, at: datetime, signed: str) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (`at` in whole seconds) and `webhook-signature` over
    `signed`, which must be sent byte for byte as given."""
    seconds = floor(at.timestamp())
    # sign() replaces the tzinfo with UTC instead of converting: give it UTC.
    signature = webhook.sign(msg_id, datetime.fromtimestamp(seconds, UTC), signed)
    return {"webhook-id": msg_id, "webhook-timestamp": str(seconds),
            "webhook-signature": signature}
