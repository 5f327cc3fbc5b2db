"""`ringback serve` as a real process for end-to-end tests: started, killed and restarted by pid."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

from audio.prompts import EncodedPrompt, PromptCache
from audio.speech import voices_from_config
from infra.settings import DEV_WEBHOOK_SECRET
from ivr.catalog import FlowCatalog, FlowOptions
from lab.kamailio import Kamailio
from lab.ports import PortBlock, allocate_ports
from lab.process import PeerProcess

RINGBACK = Path(sys.executable).with_name("ringback")


def survey_settings(
    kamailio: Kamailio, *, password: str | None = None, company: str = "Acme"
) -> dict[str, str]:
    """`ringback serve` for survey and warning tests: registered at `kamailio` as ringback,
    dialing the clients' numbers there, English prompts, a survey due seconds after the call,
    quick retries, the calling window all day and quick ticks (add the CRM URL and limits per
    test)."""
    return {
        "RINGBACK_SIP_REGISTRAR": kamailio.domain,
        "RINGBACK_SIP_USER": "ringback",
        "RINGBACK_SIP_PASSWORD": password or kamailio.users["ringback"],
        "RINGBACK_SIP_DIAL_TEMPLATE": "{digits}",
        "RINGBACK_COMPANY_NAME": company,
        "RINGBACK_DEFAULT_LOCALE": "en",
        "RINGBACK_SURVEY_DELAY_S": "2",
        "RINGBACK_SURVEY_MIN_CALL_S": "10",
        "RINGBACK_SURVEY_NO_INPUT_S": "2",
        "RINGBACK_SURVEY_RETRY_DELAY_S": "1",
        "RINGBACK_WARNING_NO_INPUT_S": "2",
        "RINGBACK_WARNING_RETRY_DELAYS": "1s",
        "RINGBACK_CALLING_WINDOW_HOURS": "mon-sun 00:00-23:59",
        "RINGBACK_DISPATCH_INTERVAL_S": "0.2",
        "RINGBACK_RING_TIMEOUT_S": "10",
    }


class RingbackService:
    def __init__(
        self, workdir: Path, env: dict[str, str], *, open_files: int | None = None
    ) -> None:
        """`open_files`: the process's descriptor limit (`ulimit -n`), set through prlimit."""
        self.workdir = workdir
        # HTTP, then an even RTP port for every channel (the service refuses fewer) and spare.
        channels = int(env.get("RINGBACK_CHANNEL_LIMIT", "10"))
        self.ports: PortBlock = allocate_ports(max(40, 2 * channels + 8))
        self.http_port = self.ports[0]
        self.env = {
            "RINGBACK_DATA_DIR": str(workdir / "data"),
            "RINGBACK_HTTP_PORT": str(self.http_port),
            "RINGBACK_SIP_PORT": "0",
            "RINGBACK_RTP_PORT_MIN": str(self.ports[2]),
            "RINGBACK_RTP_PORT_MAX": str(self.ports.last),
            "RINGBACK_LOG_LEVEL": "INFO",
            **env,
        }
        limit = [] if open_files is None else ["prlimit", f"--nofile={open_files}", "--"]
        self.process = PeerProcess(
            "ringback", [*limit, str(RINGBACK), "serve"], workdir / "ringback.log", cwd=workdir,
            env={**_base_env(), **self.env},
        )
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def rtp_range(self) -> tuple[int, int]:
        return self.ports[2], self.ports.last

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "ringback.db"

    def survey_prompt(self, prompt_id: str, company: str, locale: str = "en") -> EncodedPrompt:
        """A survey prompt as the service rendered it (read back from its prompt cache)."""
        return self.prompt("survey", prompt_id, company, locale)

    def prompt(self, flow: str, prompt_id: str, company: str, locale: str = "en",
               values: dict[str, str] | None = None) -> EncodedPrompt:
        """A prompt of a call of `flow` with the call's `values`, as the service rendered it
        (read back from its prompt cache, or rendered the same way)."""
        catalog = FlowCatalog(FlowOptions(company=company, default_locale=locale))
        text = catalog.session(flow, locale, values or {}).texts[prompt_id]
        cache = PromptCache(self.workdir / "data" / "prompts", voices_from_config({}))
        # On a thread of its own: a test driving a browser has Playwright's loop running here.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, cache.from_text(text, locale)).result()

    def start(self, timeout: float = 60.0) -> RingbackService:
        self.process.start()
        self.process.wait_ready(self.healthy, timeout=timeout, what="/healthz")
        return self

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
            return bool(response.status == 200)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self.process.stop(timeout=5.0, sig=signal.SIGKILL)

    def stop(self) -> None:
        self.process.stop(timeout=20.0)

    def close(self) -> None:
        self.process.stop(timeout=20.0)
        self.ports.release()

    def log_text(self) -> str:
        return self.process.log_text()

    def post_event(
        self, event: dict[str, Any], *, secret: str = DEV_WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST a CRM event signed with Standard Webhooks (unless `headers` replace them)."""
        body = json.dumps(event).encode()
        signed = sign(body, event["id"], secret) if headers is None else headers
        request = urllib.request.Request(
            f"{self.url}/webhooks/crm", data=body, method="POST",
            headers={"content-type": "application/json", **signed},
        )
        return _send(request)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """`ringback <args>` on this service's settings and data (users, tokens ...)."""
        return subprocess.run([str(RINGBACK), *args], env={**self.process.env},
                              cwd=self.workdir, input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)

    def get(self, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        return _send(urllib.request.Request(f"{self.url}{path}", headers=headers))


def sign(
    body: bytes, message_id: str, secret: str, at: datetime.datetime | None = None
) -> dict[str, str]:
    now = at or datetime.datetime.now(datetime.UTC)
    signature = Webhook(secret).sign(message_id, now, body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def _send(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
