"""The hold player on a real SIP call (ringback's engine → Kamailio → baresip): the caller hears
the first delay, a tip, the gap, the next tip — and the tip stops the moment an agent is free."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from audio.prompts import EncodedPrompt, PromptCache
from ivr.hold_rotation import CallerRotation, HoldTiming, RotationMode, RotationTip
from ivr.hold_session import HoldSession
from lab.kamailio import Kamailio
from lab.ports import PortBlock
from telephony.hold_player import HoldEnd, HoldPlayer
from telephony.outcomes import Outcome
from tests.conftest import BaresipFactory, CaptureFactory
from tests.integration.test_engine_outbound import user_agent

pytestmark = pytest.mark.peers

TIP_S = 2.0


def noise_tip(cache: PromptCache, seed: int) -> EncodedPrompt:
    """Speech-band noise: unmistakable in the capture, different for every tip."""
    rng = np.random.default_rng(seed)
    pcm = np.clip(rng.normal(0, 5000, int(8000 * TIP_S)), -32768, 32767).astype("<i2")
    return cache.from_clip(pcm.tobytes())


async def test_tips_play_in_turn_and_stop_at_once_when_an_agent_is_free(
    kamailio: Kamailio, baresip: BaresipFactory, capture: CaptureFactory, rtp_ports: PortBlock,
    tmp_path: Path,
) -> None:
    baresip(kamailio)
    cache = PromptCache(tmp_path / "prompts")
    sounds = {1: noise_tip(cache, 1), 2: noise_tip(cache, 2)}
    tips = (RotationTip(1, position=1), RotationTip(2, position=2))
    session = HoldSession(tips, CallerRotation(RotationMode.ORDER, random.Random(0)),
                          HoldTiming(first_delay_s=0.5, gap_s=1.0))
    played: list[int] = []
    hung_up: list[int] = []
    cap = capture((rtp_ports[0], rtp_ports.last))
    async with user_agent(rtp_ports, registrar=kamailio.domain) as ua:
        result = await ua.call("client", ring_timeout=10)
        assert result.outcome is Outcome.ANSWERED, result
        call = result.call
        assert call is not None
        player = HoldPlayer(call, session, sounds, datetime.now, played.append, hung_up.append)
        waiting = asyncio.create_task(player.run(60))
        # 0.5 s delay + tip 1 (2 s) + 1 s gap: tip 2 has played for about a second at 4.5 s.
        await asyncio.sleep(4.5)
        player.connect()
        assert await asyncio.wait_for(waiting, 5) is HoldEnd.CONNECTED
        await asyncio.sleep(1.5)  # the line stays up: only the tip stopped
        assert call.end_reason is None
        await call.hangup()
        local_port = call.stream.local_port
    cap.stop()

    assert played == [1, 2] and hung_up == []
    ours = sorted((p for p in cap.rtp_packets([local_port]) if p.src_port == local_port
                   and p.payload_type == 0), key=lambda p: p.time)
    sent = b"".join(p.payload for p in ours)
    first, second = sounds[1].ulaw, sounds[2].ulaw
    assert first in sent  # tip 1 whole
    start = sent.index(second[:4000])
    assert sent.index(first) < start  # then tip 2 began ...
    heard = next((n for n in range(len(second))
                  if start + n >= len(sent) or sent[start + n] != second[n]), len(second))
    assert 4000 <= heard < len(second)  # ... and was cut off, never finished
