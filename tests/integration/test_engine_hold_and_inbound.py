"""Issue 8, SIP that real trunks and PBXs send: a hold that never ends, and inbound calls to
`ringback serve` before the inbound line exists.

- A sipp callee answers, puts us on hold (re-INVITE a=sendonly) and never resumes: the survey's
  no-input timers still run and the flow says goodbye, or the backend's hold limit hangs up
  (`held_too_long`). No timing is asserted: the outcome, and that the call ended at all.
- sipp calls a running `ringback serve`: 480 with Retry-After at once; 100 callers who cancel
  while it rings leave no slot taken, so the next caller still gets 480, never 486.
- With a message configured, the caller is answered, hears it and is hung up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio.g711 import Law, encode
from audio.prompts import EncodedPrompt, PromptCache
from audio.speech import voices_from_config
from ivr.catalog import FlowCatalog, FlowOptions, default_entries
from ivr.results import FlowResult
from lab.ports import allocate_ports
from lab.ringback import RingbackService
from lab.sipp import EXIT_ALL_OK
from telephony.backend import CallReport, FlowCall
from telephony.inbound_policy import InboundAnswer, InboundPolicy
from telephony.outcomes import Outcome
from telephony.sip.call import EndReason
from telephony.sip_backend import SipBackend
from tests.conftest import SippFactory
from tests.integration.test_engine_outbound import user_agent

pytestmark = pytest.mark.peers

CALL_BOUND_S = 120.0  # a guard against a wedged call, never a timing assertion
CANCELLING_CALLERS = 100


class Progress:
    def __init__(self) -> None:
        self.answered_with: Mapping[str, Any] | None = None
        self.results: list[str] = []
        self.withdrawn = asyncio.Event()  # never: the call stays wanted

    async def dial_slot(self) -> None:
        return None  # no rate budget here: dial at once

    async def answered(self, dialog: Mapping[str, Any]) -> None:
        self.answered_with = dialog

    def recorded(self, result: str, value: int | None) -> None:
        self.results.append(result)


async def survey_on_hold(
    sipp: SippFactory, ports: Any, prompts_dir: Path, *, no_input_s: float, max_hold_s: float
) -> CallReport:
    """A survey call to a sipp callee that holds it ~1 s after answering and never resumes."""
    callee = sipp("uas_answer_hold", service="held", calls=1, start=True)
    async with user_agent(ports) as ua:
        backend = SipBackend(
            ua, PromptCache(prompts_dir, voices_from_config({})),
            FlowCatalog(FlowOptions(company="Acme", default_locale="en"),
                        default_entries(survey_no_input_s=no_input_s)),
            dial_template=f"sip:{{digits}}@127.0.0.1:{callee.port}",
            max_hold_s=max_hold_s,
        )
        progress = Progress()
        report = await asyncio.wait_for(
            backend.run(FlowCall("job-1", "+15550100", "survey", "en"), progress),
            CALL_BOUND_S,
        )
    assert progress.answered_with is not None
    assert await asyncio.to_thread(callee.wait, 30.0) == EXIT_ALL_OK, callee.describe()
    assert callee.received("BYE"), callee.describe()  # we hung up
    return report


async def test_on_hold_for_good_the_flow_timers_still_end_the_call(
    sipp: SippFactory, rtp_ports: Any, tmp_path: Path
) -> None:
    report = await survey_on_hold(sipp, rtp_ports, tmp_path, no_input_s=1.0, max_hold_s=600.0)
    assert report.outcome is Outcome.ANSWERED
    assert report.result == FlowResult.NO_INPUT  # asked, unheard, timed out: the flow left
    assert report.detail == EndReason.LOCAL_HANGUP.value


async def test_on_hold_for_good_the_hold_limit_ends_the_call(
    sipp: SippFactory, rtp_ports: Any, tmp_path: Path
) -> None:
    report = await survey_on_hold(sipp, rtp_ports, tmp_path, no_input_s=60.0, max_hold_s=3.0)
    assert report.outcome is Outcome.ANSWERED
    assert report.result == FlowResult.HUNG_UP  # nothing was answered: the line went
    assert report.detail == EndReason.HELD_TOO_LONG.value


# --- inbound calls to `ringback serve` ----------------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A running `ringback serve` (no registrar) listening for SIP; yields its host:port."""
    sip_port = allocate_ports(1)
    service = RingbackService(tmp_path / "ringback", {"RINGBACK_SIP_PORT": str(sip_port[0])})
    try:
        service.start()
        yield f"127.0.0.1:{sip_port[0]}"
    finally:
        service.close()
        sip_port.release()
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            print(f"\n===== ringback log =====\n{service.log_text()[-8000:]}")


def one_refused_call(sipp: SippFactory, serve: str) -> int:
    caller = sipp("uac_call_rejected", remote=serve, service="ringback", calls=1)
    assert caller.run(30.0) == EXIT_ALL_OK, caller.describe()
    [final] = [m for m in caller.received() if (m.status or 0) >= 200]
    assert final.header("Retry-After") == "300", final.text
    return final.status or 0


def test_serve_refuses_an_inbound_call_at_once_with_480_and_retry_after(
    sipp: SippFactory, serve: str
) -> None:
    assert one_refused_call(sipp, serve) == 480


def test_callers_who_cancel_while_it_rings_never_fill_the_queue(
    sipp: SippFactory, serve: str
) -> None:
    callers = sipp("uac_call_cancel", remote=serve, service="ringback",
                   calls=CANCELLING_CALLERS, rate=50)  # fmt: skip
    assert callers.run(120.0) == EXIT_ALL_OK, callers.describe()
    statuses = callers.received_statuses()
    assert 486 not in statuses, callers.describe()
    finals = [s for s in statuses if s in (480, 487)]
    assert len(finals) >= CANCELLING_CALLERS, callers.describe()  # retransmissions count too
    assert one_refused_call(sipp, serve) == 480  # still refused as configured, not busy


def tone(seconds: float) -> EncodedPrompt:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return EncodedPrompt(key="closed", ulaw=encode(pcm, Law.ULAW), alaw=encode(pcm, Law.ALAW),
                         duration_s=seconds)


async def test_with_a_message_the_caller_is_answered_hears_it_and_is_hung_up(
    sipp: SippFactory, rtp_ports: Any
) -> None:
    async with user_agent(rtp_ports) as ua:
        policy = asyncio.create_task(InboundPolicy(ua, InboundAnswer(message=tone(2.0))).run())
        caller = sipp("uac_call_wait_bye", remote=f"127.0.0.1:{ua.endpoint.port}",
                      service="ringback", calls=1)  # fmt: skip
        code = await asyncio.to_thread(caller.run, CALL_BOUND_S)
        sent = ua.media.stats().packets_sent
        policy.cancel()
        await asyncio.gather(policy, return_exceptions=True)
    assert code == EXIT_ALL_OK, caller.describe()
    assert caller.received(status=200, method="INVITE"), caller.describe()
    assert caller.received("BYE"), caller.describe()
    assert sent >= 50  # a second of audio at least went out before our BYE
