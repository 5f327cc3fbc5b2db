"""The flow runner carries out a warning call's transfer to the account manager on the line:
key 2 puts the caller through (the target routed as the runner was told), a failed transfer
promises a callback instead. The line is an in-memory stand-in for the `Line` protocol; every
wait is bounded, nothing is asserted about time."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from audio.prompts import EncodedPrompt
from ivr.actions import Result
from ivr.results import FlowResult
from ivr.warning import (
    BALANCE,
    CONNECTING,
    GOODBYE,
    HELLO,
    MANAGER_CALLBACK,
    MENU,
    WarningReason,
    warning_session,
)
from telephony.flow_runner import FlowRunner
from telephony.line import EndReason

PROMPT_S = 0.002  # how long a prompt plays
TRANSFER_S = 0.002  # how long the far end takes to answer a transfer
GUARD_S = 10.0  # a bound on the whole call: never an assertion about time
MANAGER_PHONE = "+79161234567"


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    detail: str = ""


class FakeLine:
    """A live call as the runner sees it. `keys[prompt]` are pressed when that prompt starts
    (each list once); `transfer` answers `outcome`, ending our leg on success as a real line
    does; `hangup` ends the call."""

    call_id = "fake-call"

    def __init__(self, keys: dict[str, str], outcome: Outcome | Exception,
                 *, bye_before_outcome: bool = False) -> None:
        self.ended = asyncio.Event()
        self.keys = dict(keys)
        self.outcome = outcome
        self.bye_before_outcome = bye_before_outcome
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.played: list[str] = []
        self.transfers: list[str] = []
        self.hangups: list[EndReason] = []
        self._stop = asyncio.Event()

    async def play(self, prompt: EncodedPrompt, *, barge_in: bool = True) -> bool:
        if self.ended.is_set():
            return False
        self.played.append(prompt.key)
        self._stop = stop = asyncio.Event()
        for key in self.keys.pop(prompt.key, ""):
            self.digits.put_nowait(key)
        try:
            await asyncio.wait_for(stop.wait(), PROMPT_S)
        except TimeoutError:
            return not self.ended.is_set()
        return False

    def stop_playback(self) -> None:
        self._stop.set()

    async def receive_digit(self, timeout: float) -> str | None:
        key = asyncio.ensure_future(self.digits.get())
        ended = asyncio.ensure_future(self.ended.wait())
        done, pending = await asyncio.wait({key, ended}, timeout=timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return key.result() if key in done else None

    async def transfer(self, target: str) -> Outcome:
        self.transfers.append(target)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        if self.outcome.succeeded and self.bye_before_outcome:
            self.ended.set()  # the far end's BYE came before the transfer's final report
        await asyncio.sleep(TRANSFER_S)
        if self.outcome.succeeded:
            self.ended.set()  # our leg is over
        return self.outcome

    async def hangup(self, reason: EndReason = EndReason.LOCAL_HANGUP) -> None:
        self.hangups.append(reason)
        self.ended.set()


def prompt(prompt_id: str) -> EncodedPrompt:
    return EncodedPrompt(key=prompt_id, ulaw=b"\xff" * 160, alaw=b"\xd5" * 160, duration_s=0.02)


def route(phone: str) -> str:
    return f"sip:{phone.removeprefix('+')}@pbx.example"


async def run_warning(line: FakeLine, *, manager: bool = True,
                      router: Callable[[str], str] = route) -> tuple[Result | None, list[Result]]:
    values = {"balance": "350.50", "currency": "RUB"}
    if manager:
        values["manager_phone"] = MANAGER_PHONE
    session = warning_session(WarningReason.BALANCE, "en", values, company="Acme",
                              default_locale="en", no_input_timeout_s=GUARD_S)
    prompts = {prompt_id: prompt(prompt_id) for prompt_id in session.texts}
    recorded: list[Result] = []
    runner = FlowRunner(line, session, prompts, recorded.append, route=router)
    result = await asyncio.wait_for(runner.run(GUARD_S * 2), GUARD_S * 3)
    return result, recorded


def outcome_of(result: Result | None) -> FlowResult | None:
    return None if result is None else result.outcome


async def test_key_2_puts_the_caller_through_to_the_routed_manager() -> None:
    line = FakeLine({MENU: "2"}, Outcome(True, "200 OK"))
    result, recorded = await run_warning(line)
    assert line.transfers == ["sip:79161234567@pbx.example"]
    assert outcome_of(result) == FlowResult.TRANSFERRED
    assert [r.outcome for r in recorded] == [FlowResult.MANAGER, FlowResult.TRANSFERRED]
    assert line.played == [HELLO, BALANCE, MENU, CONNECTING]
    assert len(line.hangups) == 1


async def test_the_target_is_routed_only_by_the_runners_route() -> None:
    line = FakeLine({MENU: "2"}, Outcome(True))
    await run_warning(line, router=str)
    assert line.transfers == [MANAGER_PHONE]


async def test_a_failed_transfer_plays_the_callback_message_and_keeps_manager() -> None:
    line = FakeLine({MENU: "2"}, Outcome(False, "486 Busy Here"))
    result, recorded = await run_warning(line)
    assert line.transfers == ["sip:79161234567@pbx.example"]
    assert line.played == [HELLO, BALANCE, MENU, CONNECTING, MANAGER_CALLBACK, GOODBYE]
    assert outcome_of(result) == FlowResult.MANAGER
    assert [r.outcome for r in recorded] == [FlowResult.MANAGER]
    assert line.hangups == [EndReason.LOCAL_HANGUP]


async def test_keys_during_the_transfer_change_nothing() -> None:
    line = FakeLine({MENU: "2", CONNECTING: "919"}, Outcome(False))
    result, _ = await run_warning(line)
    assert len(line.transfers) == 1
    assert line.played == [HELLO, BALANCE, MENU, CONNECTING, MANAGER_CALLBACK, GOODBYE]
    assert outcome_of(result) == FlowResult.MANAGER


async def test_without_a_manager_key_2_asks_for_a_callback_without_a_transfer() -> None:
    line = FakeLine({MENU: "2"}, Outcome(True))
    result, _ = await run_warning(line, manager=False)
    assert line.transfers == []
    assert line.played == [HELLO, BALANCE, MENU, MANAGER_CALLBACK, GOODBYE]
    assert outcome_of(result) == FlowResult.MANAGER


async def test_the_far_ends_bye_before_the_transfers_report_still_counts_as_transferred() -> None:
    """RFC 3515: the transferee may hang up on us before its final NOTIFY arrives; the caller
    was put through all the same (no callback task for the manager)."""
    line = FakeLine({MENU: "2"}, Outcome(True, "200 OK"), bye_before_outcome=True)
    result, _ = await run_warning(line)
    assert outcome_of(result) == FlowResult.TRANSFERRED
    assert len(line.hangups) == 1


async def test_a_transfer_the_line_cannot_place_counts_as_failed() -> None:
    line = FakeLine({MENU: "2"}, RuntimeError("cannot call tel:+79161234567"))
    result, _ = await run_warning(line)
    assert line.played == [HELLO, BALANCE, MENU, CONNECTING, MANAGER_CALLBACK, GOODBYE]
    assert outcome_of(result) == FlowResult.MANAGER
    assert line.hangups == [EndReason.LOCAL_HANGUP]  # the flow ended it, not the call's cap
