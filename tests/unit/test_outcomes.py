"""Final statuses in words the rest of ringback understands."""

import pytest

from telephony.outcomes import Outcome, outcome_for_status


@pytest.mark.parametrize(("status", "expected"), [
    (200, Outcome.ANSWERED), (486, Outcome.BUSY), (600, Outcome.BUSY), (603, Outcome.DECLINED),
    (480, Outcome.NO_ANSWER), (404, Outcome.UNREACHABLE), (604, Outcome.UNREACHABLE),
    (487, Outcome.CANCELLED), (503, Outcome.FAILED), (488, Outcome.FAILED),
])
def test_statuses(status: int, expected: Outcome) -> None:
    assert outcome_for_status(status) is expected


def test_a_487_after_our_ring_timeout_is_a_no_answer() -> None:
    assert outcome_for_status(487, cancelled_by_ring_timeout=True) is Outcome.NO_ANSWER


def test_a_proxys_408_is_unreachable_unless_the_phone_rang() -> None:
    assert outcome_for_status(408) is Outcome.UNREACHABLE  # nothing answered: like Timer B
    assert outcome_for_status(408, rang=True) is Outcome.NO_ANSWER  # it rang, nobody picked up
