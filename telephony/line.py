"""The line a flow runs on: what the ivr runner needs of a live call, whatever carries it (a SIP
call today, a Twilio call later). Nothing above telephony knows which."""

import asyncio
from enum import Enum
from typing import Protocol

from audio.prompts import EncodedPrompt


class EndReason(Enum):
    LOCAL_HANGUP = "local_hangup"
    REMOTE_HANGUP = "remote_hangup"
    NO_ACK = "no_ack"  # our 2xx was never acknowledged
    BAD_ANSWER = "bad_answer"  # the far end's SDP could not be used
    HELD_TOO_LONG = "held_too_long"  # the far end kept us on hold past the call's hold limit
    MAX_DURATION = "max_duration"  # the call reached the length its owner allows
    TRANSFERRED = "transferred"  # a transfer succeeded; then we (or the far end) sent BYE


class TransferOutcome(Protocol):
    @property
    def succeeded(self) -> bool:
        """The caller was put through; the line is ours no more."""

    @property
    def detail(self) -> str:
        """Why not, or what the far end reported, for the logs."""


class Line(Protocol):
    ended: asyncio.Event  # set once the call is over, whoever ended it

    @property
    def call_id(self) -> str: ...

    async def play(self, prompt: EncodedPrompt, *, barge_in: bool = True) -> bool:
        """Play a prompt to its end (True) or until cut short by a key, `stop_playback` or the
        end of the call (False)."""

    def stop_playback(self) -> None: ...

    async def receive_digit(self, timeout: float) -> str | None:
        """The next key the caller pressed, or None after `timeout` or when the call ended."""

    async def transfer(self, target: str) -> TransferOutcome:
        """Put the caller through to `target` (a number or a URI); on success our leg ends."""

    async def hangup(self, reason: EndReason = EndReason.LOCAL_HANGUP) -> None:
        """End the call (nothing happens when it has ended already)."""
