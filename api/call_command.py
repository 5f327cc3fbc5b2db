"""`ringback call TARGET`: one robot call, printed as one JSON line (the operator's test call)."""

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio.prompts import EncodedPrompt, PromptCache
from audio.speech import LocaleVoices, voices_from_config
from infra.settings import Settings
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.stack import dial_target
from telephony.sip.ua import SipUserAgent
from telephony.sip.uri import is_tel_uri, parse_tel_uri


@dataclass(frozen=True)
class TestCallRequest:
    target: str
    say: str | None = None
    play: Path | None = None
    digits: int = 1
    timeout_s: float = 10.0
    ring_timeout_s: float | None = None
    caller_id: str | None = None
    language: str | None = None


@dataclass
class TestCallReport:
    outcome: str
    sip_status: int | None
    reason: str
    call_id: str
    digits: str = ""
    prompt_complete: bool | None = None
    end_reason: str | None = None
    durations: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        data: dict[str, Any] = dict(self.__dict__)
        data["durations"] = {name: round(value, 3) for name, value in self.durations.items()}
        return json.dumps(data, ensure_ascii=False)


def account_from(settings: Settings) -> SipAccount:
    return SipAccount(
        user=settings.sip_user,
        password=settings.sip_password,
        domain=settings.sip_domain,
        registrar=settings.sip_registrar,
        auth_user=settings.sip_auth_user,
        display_name=settings.sip_display_name,
    )


def speech_from(settings: Settings) -> LocaleVoices:
    """The speech engine of each language (`RINGBACK_TTS_VOICES`, `RINGBACK_TTS_RATE_WPM`)."""
    return voices_from_config(settings.tts_voices, default_rate_wpm=settings.tts_rate_wpm)


def engine_config_from(settings: Settings) -> EngineConfig:
    return EngineConfig(
        local_host=settings.sip_local_host,
        public_host=settings.sip_public_host,
        sip_port=settings.sip_port,
        rtp_ports=(settings.rtp_port_min, settings.rtp_port_max),
        register_expires=settings.sip_register_expires,
    )


def dial_string(settings: Settings, target: str) -> str:
    """A `tel:` target (RFC 3966) is dialled as the service dials phone numbers: its number
    through the dial template; anything else goes to the engine as given."""
    if not is_tel_uri(target):
        return target
    return dial_target(settings.sip_dial_template, parse_tel_uri(target).phone)


async def prepare_prompt(settings: Settings, request: TestCallRequest) -> EncodedPrompt | None:
    """Render or load the prompt before dialing: nobody waits for synthesis on the line."""
    cache = PromptCache(settings.prompt_cache_dir, speech_from(settings))
    if request.play is not None:
        return cache.from_wav(request.play)
    if request.say:
        language = request.language or settings.tts_language
        return await cache.from_text(request.say, language)
    return None


async def run_test_call(settings: Settings, request: TestCallRequest) -> TestCallReport:
    target = dial_string(settings, request.target)
    prompt = await prepare_prompt(settings, request)
    loop = asyncio.get_running_loop()
    async with SipUserAgent(account_from(settings), engine_config_from(settings)) as ua:
        started = loop.time()
        result = await ua.call(
            target,
            caller_id=request.caller_id,
            ring_timeout=request.ring_timeout_s or settings.ring_timeout_s,
        )
        report = TestCallReport(
            outcome=result.outcome.value,
            sip_status=result.sip_status,
            reason=result.reason,
            call_id=result.call_id,
            durations={"setup_s": result.setup_s},
        )
        call = result.call
        if call is None:
            report.durations["total_s"] = loop.time() - started
            return report
        if prompt is not None:
            report.prompt_complete = await call.play(prompt)
        if request.digits > 0:
            report.digits = await call.collect_digits(request.digits, request.timeout_s)
        await call.hangup()
        report.end_reason = call.end_reason.value if call.end_reason else None
        report.durations["talk_s"] = call.duration_s
        report.durations["total_s"] = loop.time() - started
        return report
