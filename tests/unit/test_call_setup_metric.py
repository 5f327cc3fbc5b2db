"""The call setup time: from the call going out (its dial slot) to its answer, answered calls
only; everything else the backend and the dispatcher say to each other passes through."""

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import api.app
from api.app import TimedBackend
from infra.metrics import Metrics
from telephony.backend import CallProgress, CallReport, FlowCall
from telephony.outcomes import Outcome

CALL = FlowCall("job-1", "+79991234567", "survey", "en", {})


class Progress:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.withdrawn = asyncio.Event()

    async def dial_slot(self) -> None:
        self.seen.append("slot")

    async def answered(self, dialog: Mapping[str, Any]) -> None:
        self.seen.append(f"answered {dict(dialog)}")

    def recorded(self, result: str, value: int | None) -> None:
        self.seen.append(f"recorded {result} {value}")


class Backend:
    """Goes out, then is answered after `ring_s` (on the fake clock) unless `answers` is False."""

    def __init__(self, clock: list[float], ring_s: float, answers: bool = True) -> None:
        self.clock = clock
        self.ring_s = ring_s
        self.answers = answers
        self.prepared: list[str] = []
        self.ended: list[Mapping[str, Any]] = []

    async def prepare(self, call: FlowCall) -> None:
        self.prepared.append(f"{call.flow}/{call.locale}")

    async def run(self, call: FlowCall, progress: CallProgress) -> CallReport:
        self.clock[0] += 7.0  # rendering prompts, waiting for the slot: not setup time
        await progress.dial_slot()
        self.clock[0] += self.ring_s
        if not self.answers:
            return CallReport(Outcome.NO_ANSWER, 487, "c1")
        await progress.answered({"call_id": "c1"})
        progress.recorded("score", 5)
        return CallReport(Outcome.ANSWERED, 200, "c1", result="score", value=5)

    async def end_orphan(self, dialog: Mapping[str, Any]) -> bool:
        self.ended.append(dialog)
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    now = [100.0]
    monkeypatch.setattr(api.app.time, "monotonic", lambda: now[0])
    yield now


def _setup(metrics: Metrics, sample: str) -> float | None:
    return metrics.registry.get_sample_value(f"ringback_call_setup_seconds_{sample}")


async def test_answered_calls_observe_the_time_from_going_out_to_the_answer(
    clock: list[float],
) -> None:
    metrics = Metrics(CollectorRegistry())
    timed = TimedBackend(Backend(clock, ring_s=4.5), metrics.call_setup.observe)
    progress = Progress()
    report = await timed.run(CALL, progress)
    assert report.outcome is Outcome.ANSWERED
    assert progress.seen == ["slot", "answered {'call_id': 'c1'}", "recorded score 5"]
    assert (_setup(metrics, "count"), _setup(metrics, "sum")) == (1.0, 4.5)


async def test_unanswered_calls_are_not_observed(clock: list[float]) -> None:
    metrics = Metrics(CollectorRegistry())
    timed = TimedBackend(Backend(clock, ring_s=30.0, answers=False), metrics.call_setup.observe)
    report = await timed.run(CALL, Progress())
    assert report.outcome is Outcome.NO_ANSWER
    assert _setup(metrics, "count") == 0.0


async def test_prepare_and_end_orphan_pass_through(clock: list[float]) -> None:
    backend = Backend(clock, ring_s=1.0)
    timed = TimedBackend(backend, Metrics(CollectorRegistry()).call_setup.observe)
    await timed.prepare(FlowCall("job-1", "", "survey", "ru"))
    assert await timed.end_orphan({"call_id": "c9"})
    assert (backend.prepared, backend.ended) == (["survey/ru"], [{"call_id": "c9"}])
