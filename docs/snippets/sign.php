<?php
// Sign one JSON event with Standard Webhooks and POST it to ringback (PHP 8, no extensions
// beyond the default ones).
// Usage: WEBHOOK_SECRET=whsec_... RINGBACK_URL=https://ringback.example.com/webhooks/crm \
//        php sign.php event.json
// Prints the three signature headers, then "HTTP <status> <reply>"; exit 0 on a 2xx.

// "v1," + base64 HMAC-SHA256 over "id.timestamp.body"; the key is the base64 after "whsec_".
function sign(string $secret, string $msgId, int $timestamp, string $body): string
{
    $key = base64_decode(substr($secret, strlen('whsec_')), true);
    return 'v1,' . base64_encode(hash_hmac('sha256', "$msgId.$timestamp.$body", $key, true));
}

$body = file_get_contents($argv[1]); // sent byte for byte as it was signed
$msgId = 'msg_' . bin2hex(random_bytes(16));
$timestamp = time();
$headers = [
    'webhook-id' => $msgId,
    'webhook-timestamp' => (string) $timestamp,
    'webhook-signature' => sign(getenv('WEBHOOK_SECRET'), $msgId, $timestamp, $body),
];
$lines = ['content-type: application/json'];
foreach ($headers as $name => $value) {
    echo "$name: $value\n";
    $lines[] = "$name: $value";
}
$context = stream_context_create(['http' => [
    'method' => 'POST',
    'header' => implode("\r\n", $lines),
    'content' => $body,
    'ignore_errors' => true, // read the reply of a 4xx too
    'timeout' => 10,
]]);
$reply = file_get_contents(getenv('RINGBACK_URL'), false, $context);
$status = (int) explode(' ', $http_response_header[0])[1];
echo "HTTP $status $reply\n";
exit($status >= 200 && $status < 300 ? 0 : 1);
