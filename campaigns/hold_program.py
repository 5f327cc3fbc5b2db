"""What a hold line plays at a moment: its tips that are enabled, renderable and active now (in
the business's zone), each with its sound, and the sound of its gaps — read fresh from the
database every time, so an edit is heard without a restart.

A tip whose sound cannot be made is left out and the reason is noted on it (`render_error`, as
`HoldSounds.check` does for the marketing page); one that already has a reason is left out until
it is edited (an edit clears the reason).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from audio.errors import AudioError
from audio.prompts import EncodedPrompt
from campaigns.hold_sounds import HoldSounds
from campaigns.hold_tips import HoldTips, Line, Tip
from ivr.hold_rotation import RotationTip, cycle_order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgramTip:
    tip: Tip
    sound: EncodedPrompt


@dataclass(frozen=True)
class Program:
    """A line's playable tips at `local` (wall-clock time in the business's zone)."""

    line: Line
    local: datetime
    tips: tuple[ProgramTip, ...]
    gap: EncodedPrompt | None  # the music bed; None: the gap is silence

    @property
    def rotation_tips(self) -> list[RotationTip]:
        return [entry.tip.rotation_tip for entry in self.tips]

    def sound(self, tip_id: int) -> EncodedPrompt | None:
        return next((entry.sound for entry in self.tips if entry.tip.id == tip_id), None)

    def round(self, seed: int = 0) -> list[ProgramTip]:
        """One full rotation round at `local` (`ivr.hold_rotation.cycle_order`): by position, or
        one deterministic weighted draw."""
        by_id = {entry.tip.id: entry for entry in self.tips}
        return [by_id[tip_id] for tip_id in
                cycle_order(self.rotation_tips, self.line.rotation, self.local, seed)]


class HoldProgram:
    def __init__(self, tips: HoldTips, sounds: HoldSounds, zone: ZoneInfo,
                 clock: Callable[[], datetime]) -> None:
        self._tips = tips
        self._sounds = sounds
        self._zone = zone
        self._clock = clock

    def local_now(self) -> datetime:
        return self._clock().astimezone(self._zone)

    async def at_now(self, line_name: str) -> Program:
        """The line as it plays now; raises `NotFound` for an unknown line and the database's
        errors as they are (the caller decides whether to retry)."""
        line = self._tips.line(line_name)
        local = self.local_now()
        entries = []
        for tip in self._tips.tips(line_name):
            if not tip.enabled or tip.render_error is not None or not tip.schedule.active(local):
                continue
            sound = await self._sound(tip)
            if sound is not None:
                entries.append(ProgramTip(tip, sound))
        gap = await self._sounds.gap(line)
        return Program(line, local, tuple(entries), gap)

    async def _sound(self, tip: Tip) -> EncodedPrompt | None:
        try:
            return await self._sounds.tip(tip)
        except AudioError as exc:
            log.warning("hold tip %d cannot be played and is left out: %s", tip.id, exc)
            self._tips.set_render_error(tip.id, tip.version, str(exc))
            return None
