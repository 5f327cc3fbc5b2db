"""Which hold tip a waiting caller hears next: pure logic, times passed in, no clock read.

A line rotates its tips by `RotationMode.ORDER` (position, then tip id) or `RotationMode.WEIGHT`
(a weighted draw). Each caller has a `CallerRotation`: within one *round* no tip repeats until
every tip active now has played; then a new round starts, never with the tip just played (when
there is another one).

Decisions:
- Schedules are read in the business's zone: `local` is wall-clock time there (naive or aware,
  only its date and time of day are read). Daily hours are `[daily_from, daily_to)`; `daily_from >
  daily_to` crosses midnight; both equal means all day.
- A date range applies to the day the daily window *started*: 22:00-02:00 with `ends_on` Dec 31
  is active at 01:00 on Jan 1 (the night of Dec 31) and not at 22:00 on Jan 1.
- The active set may change between two calls of `next_tip` (a schedule opens or closes, a tip
  is added): a tip that joins mid-round is played in that round; one that is gone is skipped; a
  tip already played in the round is not played again in it even if it left and came back. The
  round is complete when every tip active now has been played.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

MIN_WEIGHT = 1
MAX_WEIGHT = 100
MAX_TIMING_S = 600.0


class RotationMode(StrEnum):
    ORDER = "order"
    WEIGHT = "weight"


@dataclass(frozen=True)
class TipSchedule:
    """When a tip may play: between two dates (inclusive, either open) and daily hours."""

    starts_on: date | None = None
    ends_on: date | None = None
    daily_from: time | None = None
    daily_to: time | None = None

    def __post_init__(self) -> None:
        if (self.daily_from is None) != (self.daily_to is None):
            raise ValueError("daily hours need both a start and an end (or neither)")
        for moment in (self.daily_from, self.daily_to):
            if moment is not None and moment.tzinfo is not None:
                raise ValueError("daily hours are wall-clock times in the business's zone")
        if self.starts_on is not None and self.ends_on is not None \
                and self.starts_on > self.ends_on:
            raise ValueError(f"a tip cannot end ({self.ends_on}) before it starts "
                             f"({self.starts_on})")

    def active(self, local: datetime) -> bool:
        """Whether the tip may play at `local` (wall-clock time in the business's zone)."""
        day = self._window_day(local)
        if day is None:
            return False
        if self.starts_on is not None and day < self.starts_on:
            return False
        return self.ends_on is None or day <= self.ends_on

    def _window_day(self, local: datetime) -> date | None:
        """The day the daily window holding `local` started, or None outside the window."""
        start, end, now = self.daily_from, self.daily_to, local.time()
        if start is None or end is None or start == end:
            return local.date()
        if start < end:
            return local.date() if start <= now < end else None
        if now >= start:
            return local.date()
        if now < end:
            return local.date() - timedelta(days=1)
        return None


@dataclass(frozen=True)
class RotationTip:
    """A tip as a line rotates it: its place in the order, its weight and when it may play."""

    tip_id: int
    position: int
    weight: int = 1
    schedule: TipSchedule = field(default_factory=TipSchedule)

    def __post_init__(self) -> None:
        if not MIN_WEIGHT <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"tip {self.tip_id}: weight {self.weight} is not in "
                             f"{MIN_WEIGHT}..{MAX_WEIGHT}")

    @property
    def order_key(self) -> tuple[int, int]:
        return self.position, self.tip_id


class CallerRotation:
    """One waiting caller's rotation over a line's tips (see the module's decisions)."""

    def __init__(self, mode: RotationMode, rng: random.Random) -> None:
        self._mode = mode
        self._rng = rng
        self._played: set[int] = set()  # tip ids played in this round
        self._last: RotationTip | None = None

    def next_tip(self, tips: Sequence[RotationTip], local: datetime) -> int | None:
        """The tip to play now, or None when no tip is active at `local`."""
        if len({tip.tip_id for tip in tips}) != len(tips):
            raise ValueError("tip ids must be unique within a line")
        active = sorted((tip for tip in tips if tip.schedule.active(local)),
                        key=lambda tip: tip.order_key)
        if not active:
            return None
        left = [tip for tip in active if tip.tip_id not in self._played]
        if not left:  # the round is complete: a new one, not opening with the tip just played
            self._played.clear()
            last = self._last
            left = [tip for tip in active if last is None or tip.tip_id != last.tip_id] or active
        chosen = self._order(left) if self._mode is RotationMode.ORDER else self._draw(left)
        self._played.add(chosen.tip_id)
        self._last = chosen
        return chosen.tip_id

    def _order(self, left: list[RotationTip]) -> RotationTip:
        """The first tip after the last one played, by (position, tip id), wrapping."""
        if self._last is None:
            return left[0]
        after = self._last.order_key
        return next((tip for tip in left if tip.order_key > after), left[0])

    def _draw(self, left: list[RotationTip]) -> RotationTip:
        return self._rng.choices(left, weights=[tip.weight for tip in left])[0]


def cycle_order(tips: Sequence[RotationTip], mode: RotationMode, local: datetime,
                seed: int = 0) -> list[int]:
    """One full round of the tips active at `local`, for a music-on-hold folder.

    ORDER: by position. WEIGHT: one round drawn with `random.Random(seed)`, so the same tips and
    seed give the same folder. A static folder loops this one round for every caller, so weights
    only decide the order of that round: they cannot make a heavier tip play more often.
    """
    rotation = CallerRotation(mode, random.Random(seed))
    count = sum(1 for tip in tips if tip.schedule.active(local))
    return [tip_id for _ in range(count)
            if (tip_id := rotation.next_tip(tips, local)) is not None]


@dataclass(frozen=True)
class HoldTiming:
    """How long a caller waits before the first tip, and the silence (or music) between tips."""

    first_delay_s: float = 5.0
    gap_s: float = 3.0

    def __post_init__(self) -> None:
        for name, seconds in (("first delay", self.first_delay_s), ("gap", self.gap_s)):
            if not 0 <= seconds <= MAX_TIMING_S:
                raise ValueError(f"hold {name} {seconds} s is not in 0..{MAX_TIMING_S:.0f} s")
