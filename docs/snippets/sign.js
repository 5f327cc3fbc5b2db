// Sign one JSON event with Standard Webhooks and POST it to ringback (Node.js 18+, no
// packages).
// Usage: WEBHOOK_SECRET=whsec_... RINGBACK_URL=https://ringback.example.com/webhooks/crm \
//        node sign.js event.json
// Prints the three signature headers, then "HTTP <status> <reply>"; exit 0 on a 2xx.
const crypto = require("node:crypto");
const fs = require("node:fs");

// "v1," + base64 HMAC-SHA256 over "id.timestamp.body"; the key is the base64 after "whsec_".
function sign(secret, msgId, timestamp, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = crypto.createHmac("sha256", key);
  mac.update(`${msgId}.${timestamp}.`);
  mac.update(body);
  return `v1,${mac.digest("base64")}`;
}

async function main() {
  const body = fs.readFileSync(process.argv[2]); // sent byte for byte as it was signed
  const msgId = `msg_${crypto.randomBytes(16).toString("hex")}`;
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    "webhook-id": msgId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": sign(process.env.WEBHOOK_SECRET, msgId, timestamp, body),
  };
  for (const [name, value] of Object.entries(headers)) {
    console.log(`${name}: ${value}`);
  }
  const response = await fetch(process.env.RINGBACK_URL, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
    signal: AbortSignal.timeout(10000),
  });
  console.log(`HTTP ${response.status} ${await response.text()}`);
  process.exitCode = response.ok ? 0 : 1;
}

main();
