"""The waiting caller as a sans-IO session: the exact actions for each event (first delay, tip,
gap, next tip; a free agent stops the tip at once; a hang-up reports the tip it cut)."""

import random
from datetime import datetime, time

from ivr.actions import CancelTimer, StartTimer, StopPlayback
from ivr.hold_rotation import CallerRotation, HoldTiming, RotationMode, RotationTip, TipSchedule
from ivr.hold_session import (
    Connected,
    GapFinished,
    HoldSession,
    HungUp,
    HungUpDuringTip,
    PlayGap,
    PlayTip,
    TimerFired,
    TipFinished,
)

NOON = datetime(2026, 6, 15, 12, 0)
TIMING = HoldTiming(first_delay_s=5.0, gap_s=3.0)
TIPS = (RotationTip(tip_id=1, position=1), RotationTip(tip_id=2, position=2))


def session(tips: tuple[RotationTip, ...] = TIPS, *, bed: str | None = None) -> HoldSession:
    return HoldSession(tips, CallerRotation(RotationMode.ORDER, random.Random(0)), TIMING,
                       bed=bed)


def test_delay_tip_gap_tip() -> None:
    hold = session()
    assert hold.start() == [StartTimer("hold.wait.1", 5.0)]
    assert hold.start() == []
    assert hold.handle(TimerFired("hold.wait.1", NOON)) == [PlayTip(1)]
    assert hold.handle(TipFinished(1, NOON)) == [StartTimer("hold.gap.2", 3.0)]
    assert hold.handle(TimerFired("hold.gap.2", NOON)) == [PlayTip(2)]
    assert hold.handle(TipFinished(2, NOON)) == [StartTimer("hold.gap.3", 3.0)]
    assert hold.handle(TimerFired("hold.gap.3", NOON)) == [PlayTip(1)]
    assert not hold.finished


def test_stale_and_unfitting_events_are_ignored() -> None:
    hold = session()
    assert hold.handle(TimerFired("hold.wait.1", NOON)) == []  # not started
    hold.start()
    assert hold.handle(TimerFired("hold.gap.9", NOON)) == []
    assert hold.handle(TipFinished(1, NOON)) == []  # nothing plays yet
    assert hold.handle(GapFinished(NOON)) == []
    assert hold.handle(TimerFired("hold.wait.1", NOON)) == [PlayTip(1)]
    assert hold.handle(TipFinished(2, NOON)) == []  # not the tip playing


def test_connected_mid_tip_stops_it_at_once_and_ends_the_session() -> None:
    hold = session()
    hold.start()
    hold.handle(TimerFired("hold.wait.1", NOON))
    assert hold.handle(Connected(NOON)) == [StopPlayback()]
    assert hold.finished and hold.connected
    assert hold.hung_up_during is None
    assert hold.handle(TipFinished(1, NOON)) == []
    assert hold.handle(HungUp(NOON)) == []


def test_connected_during_the_wait_cancels_its_timer() -> None:
    hold = session()
    hold.start()
    assert hold.handle(Connected(NOON)) == [CancelTimer("hold.wait.1")]
    assert hold.finished and hold.connected


def test_hung_up_mid_tip_reports_the_tip() -> None:
    hold = session()
    hold.start()
    hold.handle(TimerFired("hold.wait.1", NOON))
    hold.handle(TipFinished(1, NOON))
    hold.handle(TimerFired("hold.gap.2", NOON))
    assert hold.handle(HungUp(NOON)) == [HungUpDuringTip(2)]
    assert hold.finished and not hold.connected
    assert hold.hung_up_during == 2


def test_hung_up_in_a_gap_reports_no_tip() -> None:
    hold = session()
    hold.start()
    hold.handle(TimerFired("hold.wait.1", NOON))
    hold.handle(TipFinished(1, NOON))
    assert hold.handle(HungUp(NOON)) == [CancelTimer("hold.gap.2")]
    assert hold.hung_up_during is None


def test_a_music_bed_fills_the_gap_and_is_cut_when_the_gap_is_over() -> None:
    hold = session(bed="bed")
    hold.start()
    hold.handle(TimerFired("hold.wait.1", NOON))
    assert hold.handle(TipFinished(1, NOON)) == [StartTimer("hold.gap.2", 3.0), PlayGap("bed")]
    assert hold.handle(TimerFired("hold.gap.2", NOON)) == [StopPlayback()]
    assert hold.handle(GapFinished(NOON)) == [PlayTip(2)]


def test_a_short_music_bed_leaves_silence_until_the_gap_is_over() -> None:
    hold = session(bed="bed")
    hold.start()
    hold.handle(TimerFired("hold.wait.1", NOON))
    hold.handle(TipFinished(1, NOON))
    assert hold.handle(GapFinished(NOON)) == []
    assert hold.handle(TimerFired("hold.gap.2", NOON)) == [PlayTip(2)]


def test_connected_during_the_music_bed_stops_it() -> None:
    hold = session(bed="bed")
    hold.start()
    hold.handle(TimerFired("hold.wait.1", NOON))
    hold.handle(TipFinished(1, NOON))
    assert hold.handle(Connected(NOON)) == [CancelTimer("hold.gap.2"), StopPlayback()]


def test_no_active_tip_keeps_to_gaps_until_one_is() -> None:
    night = (RotationTip(tip_id=7, position=1,
                         schedule=TipSchedule(daily_from=time(22), daily_to=time(2))),)
    hold = session(night)
    hold.start()
    assert hold.handle(TimerFired("hold.wait.1", NOON)) == [StartTimer("hold.gap.2", 3.0)]
    late = datetime(2026, 6, 15, 22, 0)
    assert hold.handle(TimerFired("hold.gap.2", late)) == [PlayTip(7)]
