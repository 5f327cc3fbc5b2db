#!/usr/bin/env bash
# Sign one JSON event with Standard Webhooks (openssl) and POST it to ringback (curl).
# Usage: WEBHOOK_SECRET=whsec_... RINGBACK_URL=https://ringback.example.com/webhooks/crm \
#        ./sign.sh event.json
# Prints the three signature headers, then "HTTP <status> <reply>"; exit 0 on a 2xx.
set -euo pipefail
body_file="$1"
msg_id="msg_$(openssl rand -hex 16)"
timestamp="$(date +%s)"
# The key is the base64 after "whsec_"; openssl takes it as hex.
key_hex="$(printf '%s' "${WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
# HMAC-SHA256 over "id.timestamp.body", the body byte for byte as it is sent.
signature="$({ printf '%s.%s.' "$msg_id" "$timestamp"; cat "$body_file"; } \
    | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64 -w 0)"
echo "webhook-id: $msg_id"
echo "webhook-timestamp: $timestamp"
echo "webhook-signature: v1,$signature"
reply="$(curl -sS -X POST "$RINGBACK_URL" \
    -H "content-type: application/json" \
    -H "webhook-id: $msg_id" \
    -H "webhook-timestamp: $timestamp" \
    -H "webhook-signature: v1,$signature" \
    --data-binary "@$body_file" -w '\n%{http_code}')"
status="${reply##*$'\n'}"
echo "HTTP $status ${reply%$'\n'*}"
[[ "$status" == 2* ]]
