"""The signing snippets of docs/crm-contract.md, run as a CRM would run them, against a real
`ringback serve` (no registrar): each signs a JSON event with the development secret and POSTs
it → 202; the headers it printed do not sign a tampered body → 401; another secret → 401. The
doc shows each snippet file verbatim. A missing interpreter fails the test: scripts/setup.sh
installs php-cli; node, openssl and curl are on the machine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.settings import DEV_OUTBOUND_SECRET, DEV_WEBHOOK_SECRET
from lab.ringback import RingbackService

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
DOC = ROOT / "docs" / "crm-contract.md"
# The doc marks each included snippet with this comment right above its code block.
_INCLUDED = re.compile(r"<!-- (docs/snippets/sign\.\w+) -->\n```\w+\n(.*?)```\n", re.DOTALL)
COMMANDS = {
    "sign.sh": ["bash"],
    "sign.py": ["python3"],
    "sign.php": ["php"],
    "sign.js": ["node"],
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RingbackService]:
    ringback = RingbackService(tmp_path_factory.mktemp("snippets"), {})
    try:
        yield ringback.start()
    finally:
        ringback.close()


def _event() -> bytes:
    ended = datetime.now(UTC).replace(microsecond=0).isoformat()
    event = {
        "id": f"evt-{uuid.uuid4()}", "type": "call.completed", "occurred_at": ended,
        "data": {"call_id": "call-42", "client_id": f"client-{uuid.uuid4()}",
                 "phone": "+7 999 123-45-67", "ended_at": ended, "duration_s": 240,
                 "timezone": "Europe/Moscow", "locale": "ru"},
    }
    return (json.dumps(event, ensure_ascii=False, indent=2) + "\n").encode()


def _run(snippet: str, body: bytes, url: str, secret: str, tmp_path: Path) -> tuple[int, str]:
    command = COMMANDS[snippet]
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed: run scripts/setup.sh", pytrace=False)
    event_file = tmp_path / "event.json"
    event_file.write_bytes(body)
    result = subprocess.run(
        [*command, str(SNIPPETS / snippet), str(event_file)], capture_output=True, text=True,
        timeout=60, check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "WEBHOOK_SECRET": secret,
             "RINGBACK_URL": url},
    )
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout


def _printed(output: str) -> tuple[dict[str, str], int, dict[str, object]]:
    """The headers the snippet printed, and the status and reply it reported."""
    *header_lines, reply_line = output.strip().splitlines()
    headers = dict(line.split(": ", 1) for line in header_lines)
    match = re.fullmatch(r"HTTP (\d{3}) (.*)", reply_line)
    assert match, reply_line
    return headers, int(match[1]), json.loads(match[2])


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("snippet", sorted(COMMANDS))
def test_the_snippet_signs_an_event_that_ringback_accepts(
    snippet: str, service: RingbackService, tmp_path: Path
) -> None:
    url = f"{service.url}/webhooks/crm"
    body = _event()

    status_code, output = _run(snippet, body, url, DEV_WEBHOOK_SECRET, tmp_path)

    headers, status, reply = _printed(output)
    assert (status_code, status, reply) == (0, 202, {
        "status": "accepted", "id": json.loads(body)["id"]})
    assert sorted(headers) == ["webhook-id", "webhook-signature", "webhook-timestamp"]
    assert headers["webhook-signature"].startswith("v1,")
    tampered = body.replace(b'"duration_s": 240', b'"duration_s": 241')
    assert tampered != body
    status, reply = _post(url, tampered, headers)
    assert (status, reply["error"]["code"]) == (401, "invalid-signature")  # type: ignore[index]


@pytest.mark.parametrize("snippet", sorted(COMMANDS))
def test_a_snippet_with_another_secret_is_refused(
    snippet: str, service: RingbackService, tmp_path: Path
) -> None:
    status_code, output = _run(snippet, _event(), f"{service.url}/webhooks/crm",
                               DEV_OUTBOUND_SECRET, tmp_path)

    _, status, reply = _printed(output)
    assert (status_code, status, reply["error"]["code"]) == (  # type: ignore[index]
        1, 401, "invalid-signature")


def test_the_doc_shows_every_snippet_file_verbatim() -> None:
    included = dict(_INCLUDED.findall(DOC.read_text()))

    assert sorted(included) == [f"docs/snippets/{name}" for name in sorted(COMMANDS)]
    for path, text in included.items():
        assert text == (ROOT / path).read_text(), f"{path} differs from its copy in the doc"
