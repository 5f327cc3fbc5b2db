"""What the hold stream plays next (campaigns.hold_stream.HoldStream), on a fake program: the
rotation, gaps, nothing active, and the database going away and coming back."""

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.exc import OperationalError

from audio.prompts import EncodedPrompt
from campaigns.hold_program import HoldProgram, Program, ProgramTip
from campaigns.hold_stats import HoldStats
from campaigns.hold_stream import HoldStream
from campaigns.hold_tips import Line, Tip
from ivr.hold_rotation import HoldTiming, RotationMode

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LINE = Line("main", "Main", RotationMode.ORDER, HoldTiming(0.0, 0.5))


def sound(tip_id: int) -> EncodedPrompt:
    pcm16 = bytes([tip_id, 0]) * 800
    return EncodedPrompt(f"{tip_id:064x}", b"", b"", 0.1, pcm16)


def tip(tip_id: int) -> ProgramTip:
    return ProgramTip(Tip(title=f"t{tip_id}", locale="en", lines=("main",), text="x",
                          id=tip_id, position=tip_id), sound(tip_id))


class FakeProgram:
    def __init__(self) -> None:
        self.tips: list[ProgramTip] | Exception = [tip(1), tip(2), tip(3)]

    def local_now(self) -> datetime:
        return NOW

    async def at_now(self, line: str) -> Program:
        if isinstance(self.tips, Exception):
            raise self.tips
        return Program(LINE, NOW, tuple(self.tips), None)


def stream(program: FakeProgram) -> HoldStream:
    return HoldStream(cast(HoldProgram, program), cast(HoldStats, object()), "main")


def played(hold: HoldStream) -> int | None:
    return hold.next_segments()[0].tip_id


def test_tips_in_rotation_each_followed_by_its_gap() -> None:
    hold = stream(FakeProgram())
    segments = hold.next_segments()
    assert [segment.tip_id for segment in segments] == [1, None]
    assert segments[0].pcm16 == sound(1).pcm16 and segments[1].pcm16 == bytes(8000)
    assert [played(hold) for _ in range(5)] == [2, 3, 1, 2, 3]


def test_edits_are_read_before_each_choice() -> None:
    program = FakeProgram()
    hold = stream(program)
    assert played(hold) == 1
    program.tips = [tip(1), tip(3)]  # tip 2 disabled meanwhile
    assert [played(hold) for _ in range(4)] == [3, 1, 3, 1]


def test_nothing_active_is_a_gap_then_asked_again() -> None:
    program = FakeProgram()
    program.tips = []
    hold = stream(program)
    (segment,) = hold.next_segments()
    assert segment.tip_id is None and segment.pcm16 == bytes(16000)  # at least a second
    program.tips = [tip(2)]
    assert played(hold) == 2


def test_a_database_outage_keeps_the_last_program_playing() -> None:
    program = FakeProgram()
    hold = stream(program)
    assert played(hold) == 1
    outage: Any = OperationalError("SELECT", {}, Exception("server closed the connection"))
    program.tips = outage
    assert [played(hold) for _ in range(3)] == [2, 3, 1]
    program.tips = [tip(2)]
    assert played(hold) == 2


def test_a_database_outage_from_the_start_is_silence() -> None:
    program = FakeProgram()
    program.tips = OperationalError("SELECT", {}, Exception("connection refused"))
    (segment,) = stream(program).next_segments()
    assert segment.tip_id is None and set(segment.pcm16) == {0}
