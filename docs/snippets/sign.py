"""Sign one JSON event with Standard Webhooks and POST it to ringback (standard library only;
the `standardwebhooks` package's `Webhook(secret).sign(...)` gives the same signature).

Usage: WEBHOOK_SECRET=whsec_... RINGBACK_URL=https://ringback.example.com/webhooks/crm \
       python3 sign.py event.json
Prints the three signature headers, then "HTTP <status> <reply>"; exit 0 on a 2xx.
"""

import base64
import hashlib
import hmac
import os
import secrets
import sys
import time
import urllib.error
import urllib.request


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 over "id.timestamp.body"; the key is the base64 after
    `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def main() -> int:
    with open(sys.argv[1], "rb") as file:
        body = file.read()  # sent byte for byte as it was signed
    msg_id = "msg_" + secrets.token_hex(16)
    timestamp = int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(os.environ["WEBHOOK_SECRET"], msg_id, timestamp, body),
    }
    for name, value in headers.items():
        print(f"{name}: {value}")
    request = urllib.request.Request(
        os.environ["RINGBACK_URL"], data=body, method="POST",
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, reply = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, reply = error.code, error.read()
    print(f"HTTP {status} {reply.decode()}")
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
