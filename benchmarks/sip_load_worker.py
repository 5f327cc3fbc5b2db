"""The ringback side of the SIP load benchmark: one process, one SipUserAgent, N calls.

Started by ``benchmarks.sip_load``; it talks to its parent over stdin/stdout, one JSON object a
line on stdout::

    {"event": "registered", "pid": ..., "nofile": ...}
    {"event": "all_up", "answered": ..., "failed": ..., "ramp_s": ...}  # every attempt settled
    {"event": "done", ...}  # after "hangup" arrived on stdin (or stdin closed): the results

Each call plays one shared prompt in a loop (``barge_in=False``: the digit does not stop it),
waits for one digit from the far end, and stays up until the parent says ``hangup``. Nothing
here measures CPU or memory: the parent does, from outside, so the numbers are ringback's only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audio.g711 import Law, encode
from audio.prompts import EncodedPrompt
from telephony.sip.call import Call
from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.ua import SipUserAgent

log = logging.getLogger("benchmarks.sip_load_worker")

SAMPLE_RATE = 8000
MAX_RUN_S = 3600.0  # a hard bound on the whole run, whatever the parent does


def speech_like_prompt(seconds: float, seed: int = 7) -> EncodedPrompt:
    """Noise shaped like speech: ~4 syllables/s, low-passed, with pauses; encoded once."""
    rng = np.random.default_rng(seed)
    n = int(SAMPLE_RATE * seconds)
    noise = rng.standard_normal(n)
    kernel = np.ones(4) / 4  # a crude low-pass, so it is not white
    shaped = np.convolve(noise, kernel, mode="same")
    t = np.arange(n) / SAMPLE_RATE
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    phrases = (np.sin(2 * np.pi * 0.25 * t) > -0.5).astype(np.float64)  # a pause every 4 s
    pcm = np.clip(shaped * syllables * phrases * 6000, -32768, 32767).astype(np.int16)
    return EncodedPrompt(
        key="bench-speech-like",
        ulaw=encode(pcm, Law.ULAW),
        alaw=encode(pcm, Law.ALAW),
        duration_s=seconds,
    )


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


@dataclass
class Results:
    outcomes: Counter[str] = field(default_factory=Counter)
    setup_s: list[float] = field(default_factory=list)
    digits: Counter[str] = field(default_factory=Counter)
    digit_delay_s: list[float] = field(default_factory=list)  # answer -> digit
    remote_hangups: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    calls: list[Call] = field(default_factory=list)
    expected: int = 0
    settled: asyncio.Event | None = None

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        if self.settled is not None and sum(self.outcomes.values()) >= self.expected:
            self.settled.set()


async def one_call(
    ua: SipUserAgent,
    target: str,
    prompt: EncodedPrompt,
    ring_timeout: float,
    hangup: asyncio.Event,
    results: Results,
) -> None:
    try:
        result = await ua.call(target, ring_timeout=ring_timeout)
    except Exception as exc:
        results.count("exception")
        results.errors[type(exc).__name__] += 1
        log.exception("call failed")
        return
    results.count(result.outcome.value)
    call = result.call
    if call is None:
        return
    results.setup_s.append(result.setup_s)
    results.calls.append(call)
    loop = asyncio.get_running_loop()
    answered = loop.time()

    async def play_until_hangup() -> None:
        while not hangup.is_set() and not call.ended.is_set():
            if not await call.play(prompt, barge_in=False):
                return

    player = asyncio.ensure_future(play_until_hangup())
    try:
        digit_task = asyncio.ensure_future(call.receive_digit(MAX_RUN_S))
        stop_task = asyncio.ensure_future(hangup.wait())
        try:
            await asyncio.wait({digit_task, stop_task, player},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
        if digit_task.done():
            digit = digit_task.result()
            if digit is not None:
                results.digits[digit] += 1
                results.digit_delay_s.append(loop.time() - answered)
        else:
            digit_task.cancel()
        await hangup.wait()
    finally:
        call.stop_playback()
        player.cancel()
    if call.ended.is_set():
        results.remote_hangups += 1
        return
    try:
        await call.hangup()
    except Exception as exc:
        results.errors[f"hangup:{type(exc).__name__}"] += 1


async def read_command(reader: asyncio.StreamReader) -> str:
    line = await reader.readline()
    return line.decode().strip() or "eof"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    prompt = speech_like_prompt(args.prompt_seconds)
    account = SipAccount(user=args.user, password=args.password, registrar=args.registrar)
    config = EngineConfig(sip_port=0, rtp_ports=(args.rtp_low, args.rtp_high))
    ua = SipUserAgent(account, config)
    await ua.start()
    results = Results()
    hangup = asyncio.Event()
    settled = asyncio.Event()
    results.expected = args.calls
    results.settled = settled
    tasks: list[asyncio.Task[None]] = []
    try:
        emit("registered", pid=os.getpid(), nofile=nofile, sip_port=ua.endpoint.port)
        started = loop.time()
        for i in range(args.calls):
            delay = started + i / args.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(
                one_call(ua, args.target, prompt, args.ring_timeout, hangup, results)))
        await settled.wait()  # every attempt has settled: answered, failed or raised
        ramp_s = loop.time() - started
        emit("all_up", answered=results.outcomes.get("answered", 0),
             failed=args.calls - results.outcomes.get("answered", 0), ramp_s=ramp_s,
             streams=ua.media.stats().streams,
             ports=sorted(c.stream.local_port for c in results.calls))
        async with asyncio.timeout(MAX_RUN_S):
            command = await read_command(reader)
        log.info("command %s", command)
        stats_before = ua.media.stats()
        received = [c.stream.packets_received for c in results.calls]
        hangup.set()
        hang_started = time.monotonic()
        await asyncio.wait(tasks, timeout=120)
        hangup_s = time.monotonic() - hang_started
        stats = ua.media.stats()
        emit(
            "done",
            outcomes=dict(results.outcomes),
            errors=dict(results.errors),
            setup_p50_s=percentile(results.setup_s, 50),
            setup_p95_s=percentile(results.setup_s, 95),
            setup_max_s=max(results.setup_s, default=None),
            setup_ms=sorted(round(1000 * x, 1) for x in results.setup_s),
            setup_mean_s=statistics.fmean(results.setup_s) if results.setup_s else None,
            digits=dict(results.digits),
            digit_delay_p50_s=percentile(results.digit_delay_s, 50),
            digit_delay_max_s=max(results.digit_delay_s, default=None),
            remote_hangups=results.remote_hangups,
            unfinished=sum(1 for t in tasks if not t.done()),
            hangup_s=hangup_s,
            media_streams_at_hold_end=stats_before.streams,
            packets_sent=stats.packets_sent,
            packets_received=stats.packets_received,
            packets_dropped=stats.packets_dropped,
            late_ticks=stats.late_ticks,
            skipped_frames=stats.skipped_frames,
            calls_without_echo=sum(1 for r in received if r == 0),
        )
    finally:
        hangup.set()
        for task in tasks:
            task.cancel()
        await ua.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrar", required=True, help="host:port of the registrar/proxy")
    parser.add_argument("--target", required=True, help="SIP URI to call")
    parser.add_argument("--user", default="ringback")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    parser.add_argument("--ring-timeout", type=float, default=30.0)
    parser.add_argument("--rtp-low", type=int, default=16000)
    parser.add_argument("--rtp-high", type=int, default=19999)
    parser.add_argument("--prompt-seconds", type=float, default=30.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="uvloop: only if installed (not a ringback dependency)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.loop == "uvloop":
        import uvloop  # type: ignore[import-not-found, unused-ignore]  # measurement only

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
