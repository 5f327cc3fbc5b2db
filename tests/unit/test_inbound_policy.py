"""Inbound calls to `ringback serve`: every one gets its final answer at once, and no call, once
cancelled, refused or rung out, keeps a slot in the engine's bounded queue.

The engine runs without sockets (`sip_offline`): the test is the caller.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from audio.prompts import EncodedPrompt
from telephony.inbound_policy import InboundAnswer, InboundPolicy
from telephony.sip.errors import CallError
from telephony.sip.inbound import IncomingQueue
from tests.unit.sip_offline import GUARD_S, OfflineUa, cancel, invite

LIMIT = 4


def call_id(n: int) -> str:
    return f"call-{n}@192.0.2.7"


@pytest.fixture
def caller() -> OfflineUa:
    return OfflineUa(max_pending_incoming=LIMIT)


@asynccontextmanager
async def policy_running(caller: OfflineUa, answer: InboundAnswer) -> AsyncIterator[None]:
    task = asyncio.create_task(InboundPolicy(caller.ua, answer).run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- the engine's queue ------------------------------------------------------------------------


async def test_a_cancelled_call_leaves_the_queue_at_once(caller: OfflineUa) -> None:
    for n in range(LIMIT):
        caller.feed(invite(n))
        caller.feed(cancel(n))
        assert caller.statuses(call_id(n), "CANCEL") == [200]
        assert caller.statuses(call_id(n)) == [100, 180, 487]
    caller.feed(invite(LIMIT))
    assert caller.statuses(call_id(LIMIT)) == [100, 180]  # not 486: the queue has room
    incoming = await caller.ua.next_incoming(GUARD_S)
    assert incoming is not None and incoming.call_id == call_id(LIMIT)
    assert len(caller.ua.incoming) == 1  # the one call still ringing


async def test_the_queue_is_bounded(caller: OfflineUa) -> None:
    for n in range(LIMIT + 1):
        caller.feed(invite(n))
    assert [caller.statuses(call_id(n)) for n in range(LIMIT + 1)] == [[100, 180]] * LIMIT + [
        [486]
    ]


async def test_a_call_nobody_answers_rings_out_with_480_taken_or_not(caller: OfflineUa) -> None:
    ua = caller.ua
    ua.incoming = IncomingQueue(ua.stack, ua.media, LIMIT, max_ring_s=0.05)
    caller.feed(invite(1))
    caller.feed(invite(2))
    taken = await ua.next_incoming(GUARD_S)
    assert taken is not None and taken.call_id == call_id(1)
    assert (await caller.final(call_id(1))).status == 480
    assert (await caller.final(call_id(2))).status == 480
    assert len(ua.incoming) == 0
    assert await ua.next_incoming(0.01) is None


async def test_a_cancel_after_the_final_response_gets_200_and_changes_nothing(
    caller: OfflineUa,
) -> None:
    caller.feed(invite(1))
    incoming = await caller.ua.next_incoming(GUARD_S)
    assert incoming is not None
    incoming.reject(480)
    caller.feed(cancel(1))
    assert caller.statuses(call_id(1), "CANCEL") == [200]
    assert caller.statuses(call_id(1)) == [100, 180, 480]
    caller.feed(cancel(2))  # no such INVITE
    assert caller.statuses(call_id(2), "CANCEL") == [481]


# --- the policy: refusing ---------------------------------------------------------------------


async def test_every_inbound_call_is_refused_at_once_with_retry_after(caller: OfflineUa) -> None:
    async with policy_running(caller, InboundAnswer()):
        caller.feed(invite(1))
        final = await caller.final(call_id(1))
    assert final.status == 480
    assert final.reason == "Temporarily Unavailable"
    assert final.headers.get("Retry-After") == "300"


async def test_the_status_and_retry_after_are_configurable(caller: OfflineUa) -> None:
    async with policy_running(caller, InboundAnswer(status=503, retry_after_s=None)):
        caller.feed(invite(1))
        final = await caller.final(call_id(1))
    assert final.status == 503
    assert final.headers.get("Retry-After") is None


async def test_cancelled_calls_never_fill_the_queue(caller: OfflineUa) -> None:
    async with policy_running(caller, InboundAnswer()):
        for n in range(25 * LIMIT):
            caller.feed(invite(n))
            caller.feed(cancel(n))
        caller.feed(invite(999))
        final = await caller.final(call_id(999))
    assert final.status == 480
    assert all(486 not in caller.statuses(call_id(n)) for n in range(25 * LIMIT))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"status": 200}, "not one of"),
        ({"status": 302}, "not one of"),
        ({"status": 407}, "not one of"),
        ({"retry_after_s": -1}, "Retry-After"),
        ({"max_message_calls": 0}, "at least one"),
    ],
)
def test_bad_answers_are_refused(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        InboundAnswer(**kwargs)


# --- the policy: a message ---------------------------------------------------------------------

MESSAGE = EncodedPrompt(key="closed", ulaw=b"\xff" * 160, alaw=b"\xd5" * 160, duration_s=0.02)


@dataclass
class FakeCall:
    played: asyncio.Event = field(default_factory=asyncio.Event)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    barge_in: bool | None = None

    async def play(self, prompt: EncodedPrompt, *, barge_in: bool = True) -> bool:
        assert prompt is MESSAGE
        self.barge_in = barge_in
        self.played.set()
        await self.finish.wait()
        return True

    async def hangup(self) -> None:
        self.hung_up.set()


@dataclass
class FakeIncoming:
    call_id: str
    call: FakeCall = field(default_factory=FakeCall)
    fails: bool = False
    refused: tuple[int, list[tuple[str, str]]] | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def reject(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.refused = (status, headers)
        self.settled.set()


class FakeUa:
    def __init__(self) -> None:
        self.ringing: asyncio.Queue[FakeIncoming] = asyncio.Queue()

    async def next_incoming(self, timeout: float) -> FakeIncoming | None:
        try:
            return await asyncio.wait_for(self.ringing.get(), timeout)
        except TimeoutError:
            return None

    async def answer(self, incoming: FakeIncoming) -> FakeCall:
        if incoming.fails:
            raise CallError("cancelled while we answered")
        return incoming.call


async def test_a_message_is_played_to_the_end_then_the_call_is_hung_up() -> None:
    ua = FakeUa()
    task = asyncio.create_task(InboundPolicy(ua, InboundAnswer(message=MESSAGE)).run())
    incoming = FakeIncoming("m1")
    ua.ringing.put_nowait(incoming)
    await asyncio.wait_for(incoming.call.played.wait(), GUARD_S)
    assert incoming.call.barge_in is False
    assert not incoming.call.hung_up.is_set()
    incoming.call.finish.set()
    await asyncio.wait_for(incoming.call.hung_up.wait(), GUARD_S)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert incoming.refused is None


async def test_message_calls_are_bounded_and_failures_do_not_stop_the_policy() -> None:
    ua = FakeUa()
    answer = InboundAnswer(message=MESSAGE, max_message_calls=1)
    task = asyncio.create_task(InboundPolicy(ua, answer).run())
    failing, playing, beyond = FakeIncoming("f", fails=True), FakeIncoming("p"), FakeIncoming("b")
    for incoming in (failing, playing, beyond):
        ua.ringing.put_nowait(incoming)
    await asyncio.wait_for(playing.call.played.wait(), GUARD_S)
    await asyncio.wait_for(beyond.settled.wait(), GUARD_S)
    assert beyond.refused == (480, [("Retry-After", "300")])
    assert failing.refused is None and playing.refused is None
    task.cancel()  # shutting down hangs up the message call in progress
    await asyncio.gather(task, return_exceptions=True)
    assert playing.call.hung_up.is_set()
