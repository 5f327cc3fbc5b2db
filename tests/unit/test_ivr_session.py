"""The survey flow through the sans-IO session, driven by a fake line that carries out actions
the way a backend must (one prompt at a time, one-shot timers), and checks the contract."""

import random
from dataclasses import dataclass, field

import pytest

from ivr.actions import (
    Action,
    CancelTimer,
    Hangup,
    Play,
    RecordResult,
    Result,
    StartTimer,
    StopPlayback,
)
from ivr.errors import FlowError
from ivr.events import Answered, Digit, Event, HungUp, PlaybackFinished, TimerFired
from ivr.flow import Choice, Flow, Menu, Message
from ivr.results import FlowResult
from ivr.session import Session
from ivr.survey import (
    GOODBYE,
    GREETING,
    INVALID_KEY,
    NO_KEY,
    QUESTION,
    THANKS,
    survey_flow,
    survey_session,
)

TIMEOUT = 6.0
COMPLETED, HUNG_UP = FlowResult.COMPLETED, FlowResult.HUNG_UP
INVALID, NO_INPUT = FlowResult.INVALID, FlowResult.NO_INPUT


def survey() -> Session:
    return survey_session("en", company="Acme", default_locale="en", no_input_timeout_s=TIMEOUT)


@dataclass
class Line:
    """Carries out a session's actions and feeds events back, with its own clock."""

    session: Session
    now: float = 0.0
    playing: Play | None = None
    timers: dict[str, float] = field(default_factory=dict)  # id -> fires at
    played: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # cut prompts whose end is still to come
    results: list[Result] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    hung_up: bool = False

    def feed(self, event: Event) -> list[Action]:
        actions = self.session.handle(event)
        for action in actions:
            self.apply(action)
        return actions

    def apply(self, action: Action) -> None:
        assert not self.hung_up, f"{action} after Hangup"
        self.actions.append(action)
        match action:
            case Play():
                assert self.playing is None, f"{action} while {self.playing} plays"
                self.playing = action
                self.played.append(action.prompt_id)
            case StopPlayback():
                assert self.playing is not None
                self.stopped.append(self.playing.prompt_id)
                self.playing = None
            case StartTimer():
                assert action.timer_id not in self.timers
                self.timers[action.timer_id] = self.now + action.seconds
            case CancelTimer():
                del self.timers[action.timer_id]
            case RecordResult():
                self.results.append(action.result)
            case Hangup():
                self.hung_up = True

    def answer(self) -> list[Action]:
        actions = self.session.start(self.now)
        for action in actions:
            self.apply(action)
        return actions

    def finish(self, interrupted: bool = False) -> list[Action]:
        """The prompt now playing ends."""
        assert self.playing is not None
        prompt, self.playing = self.playing.prompt_id, None
        self.now += 1
        return self.feed(PlaybackFinished(prompt, self.now, interrupted))

    def press(self, key: str) -> list[Action]:
        """A key; the end of a prompt it cut is reported after it (and ignored by the session)."""
        self.now += 0.5
        actions = self.feed(Digit(key, self.now))
        while self.stopped:
            assert self.feed(PlaybackFinished(self.stopped.pop(0), self.now, True)) == []
        return actions

    def wait(self) -> list[Action]:
        """Silence until the only running timer fires."""
        assert self.playing is None
        ((timer_id, at),) = self.timers.items()
        del self.timers[timer_id]
        self.now = at
        return self.feed(TimerFired(timer_id, at))

    def hang_up(self) -> list[Action]:
        self.now += 0.1
        return self.feed(HungUp(self.now))

    def play_out(self) -> None:
        """Let every remaining prompt play to its end."""
        while self.playing is not None:
            self.finish()


def answered_survey() -> Line:
    line = Line(survey())
    line.answer()
    line.finish()  # greeting
    assert line.playing is not None and line.playing.prompt_id == QUESTION
    return line


# -- the paths of the survey --------------------------------------------------------------------


def test_greeting_then_question_then_no_input_timer() -> None:
    line = Line(survey())
    assert line.answer() == [
        Play(
            GREETING,
            "Hello! This is a short survey from Acme about your recent call with our support team.",
            barge_in=False,
        )
    ]
    (question,) = line.finish()
    assert question == Play(QUESTION, line.session.texts[QUESTION], barge_in=True)
    assert line.finish() == [StartTimer("question.no_input.1", TIMEOUT)]


def test_valid_key_first_time_records_score_thanks_goodbye_hangup() -> None:
    line = answered_survey()
    line.finish()
    actions = line.press("4")
    assert actions == [
        CancelTimer("question.no_input.1"),
        RecordResult(Result("score", 4, line.now)),
        Play(THANKS, "Thank you for your answer!", barge_in=False),
    ]
    assert line.finish() == [Play(GOODBYE, "Goodbye!", barge_in=False)]
    assert line.finish() == [Hangup()]
    assert line.session.finished
    assert line.session.result == Result("score", 4, 2.5)
    assert line.played == [GREETING, QUESTION, THANKS, GOODBYE]
    assert line.timers == {}


def test_silence_three_times_hears_question_three_times_then_goodbye() -> None:
    line = answered_survey()
    line.finish()
    assert next(a for a in line.wait() if isinstance(a, Play)).prompt_id == NO_KEY
    line.finish()  # apology
    line.finish()  # question, second time
    line.wait()
    line.finish()
    line.finish()  # question, third time
    actions = line.wait()
    assert actions == [
        RecordResult(Result(NO_INPUT, None, line.now)),
        Play(GOODBYE, "Goodbye!", barge_in=False),
    ]
    assert line.finish() == [Hangup()]
    assert line.played == [GREETING, QUESTION, NO_KEY, QUESTION, NO_KEY, QUESTION, GOODBYE]
    assert line.session.result is not None and line.session.result.outcome == NO_INPUT
    assert [t.timer_id for t in line.actions if isinstance(t, StartTimer)] == [
        "question.no_input.1",
        "question.no_input.2",
        "question.no_input.3",
    ]


def test_wrong_key_then_valid_key() -> None:
    line = answered_survey()
    line.finish()
    actions = line.press("7")
    assert actions == [
        CancelTimer("question.no_input.1"),
        Play(INVALID_KEY, "Sorry, I did not get that.", barge_in=True),
    ]
    line.finish()
    line.finish()  # question again
    line.press("5")
    line.play_out()
    assert line.results == [Result("score", 5, 5.0)]
    assert line.played == [GREETING, QUESTION, INVALID_KEY, QUESTION, THANKS, GOODBYE]
    assert line.hung_up


def test_wrong_keys_until_repeats_run_out_record_invalid_without_apology() -> None:
    line = answered_survey()
    line.press("0")
    line.finish()
    line.press("#")
    line.finish()
    line.finish()
    line.wait()  # silence on the last try: a wrong key was still pressed
    line.play_out()
    assert line.played.count(QUESTION) == 3
    assert line.played[-1] == GOODBYE
    assert line.results == [Result(INVALID, None, line.results[0].at)]


def test_key_during_question_barges_in() -> None:
    line = answered_survey()
    actions = line.press("2")
    assert actions == [
        StopPlayback(),
        RecordResult(Result("score", 2, line.now)),
        Play(THANKS, "Thank you for your answer!", barge_in=False),
    ]
    line.play_out()
    assert line.session.result is not None and line.session.result.value == 2
    assert not any(isinstance(a, StartTimer) for a in line.actions)


def test_barge_in_works_whichever_arrives_first_the_key_or_the_cut_prompt() -> None:
    line = answered_survey()
    # The backend cut the prompt on the key and reported that before the key itself.
    assert line.feed(PlaybackFinished(QUESTION, 3.0, interrupted=True)) == [
        StartTimer("question.no_input.1", TIMEOUT)
    ]
    line.playing = None
    assert line.feed(Digit("3", 3.0)) == [
        CancelTimer("question.no_input.1"),
        RecordResult(Result("score", 3, 3.0)),
        Play(THANKS, "Thank you for your answer!", barge_in=False),
    ]


def test_key_during_apology_barges_in_and_counts() -> None:
    line = answered_survey()
    line.press("9")
    assert line.playing is not None and line.playing.prompt_id == INVALID_KEY
    actions = line.press("1")
    assert actions[:2] == [StopPlayback(), RecordResult(Result("score", 1, line.now))]
    assert line.played.count(QUESTION) == 1


def test_wrong_key_cutting_the_question_is_not_mistaken_for_its_end() -> None:
    flow = Flow(
        name="bare",
        start="menu",
        steps=(Menu("menu", "q", {"1": Choice(None, "one")}, 5.0, 1, exhausted=None),),
        templates={"en": {"q": "Press one."}},
    )
    line = Line(Session(flow, "en", {"q": "Press one."}))
    line.answer()
    actions = line.feed(Digit("8", 1.0))
    assert actions == [StopPlayback(), Play("q", "Press one.", barge_in=True)]
    # The cut question's end arrives after the new one started: it must not start the timer.
    assert line.feed(PlaybackFinished("q", 1.1, interrupted=True)) == []
    assert line.finish() == [StartTimer("menu.no_input.1", 5.0)]


def test_key_during_greeting_is_ignored_and_the_question_is_played() -> None:
    line = Line(survey())
    line.answer()
    assert line.press("5") == []  # the greeting is not cut
    assert line.playing is not None and line.playing.prompt_id == GREETING
    assert line.finish() == [Play(QUESTION, line.session.texts[QUESTION], barge_in=True)]
    assert line.finish() == [StartTimer("question.no_input.1", TIMEOUT)]
    assert line.results == []
    assert line.session.result is None


def test_only_the_key_after_the_question_starts_is_the_score() -> None:
    line = Line(survey())
    line.answer()
    line.press("5")
    line.press("1")
    line.finish()  # greeting: the question starts
    assert line.press("2") == [
        StopPlayback(),
        RecordResult(Result("score", 2, line.now)),
        Play(THANKS, "Thank you for your answer!", barge_in=False),
    ]
    pressed_at = line.now
    line.play_out()
    assert line.results == [Result("score", 2, pressed_at)]
    assert line.played == [GREETING, QUESTION, THANKS, GOODBYE]


def test_wrong_key_during_greeting_is_not_counted_as_wrong() -> None:
    line = Line(survey())
    line.answer()
    line.press("0")
    assert line.finish() == [Play(QUESTION, line.session.texts[QUESTION], barge_in=True)]
    line.finish()
    line.wait()
    line.finish()
    line.finish()
    line.wait()
    line.finish()
    line.finish()
    line.wait()
    assert line.played.count(QUESTION) == 3
    assert line.results[0].outcome == NO_INPUT


def test_keys_during_thanks_and_goodbye_change_nothing() -> None:
    line = answered_survey()
    line.press("4")
    scored = line.results[0]
    assert line.playing is not None and line.playing.prompt_id == THANKS
    assert line.press("1") == []
    line.finish()
    assert line.press("#") == []
    assert line.finish() == [Hangup()]
    assert line.results == [scored] and scored.value == 4


def test_hang_up_mid_question_records_hung_up_and_nothing_else() -> None:
    line = answered_survey()
    assert line.hang_up() == [RecordResult(Result(HUNG_UP, None, line.now))]
    assert line.session.finished
    assert line.feed(PlaybackFinished(QUESTION, 9.0, interrupted=True)) == []


def test_hang_up_while_waiting_cancels_the_timer() -> None:
    line = answered_survey()
    line.finish()
    assert line.hang_up() == [
        CancelTimer("question.no_input.1"),
        RecordResult(Result(HUNG_UP, None, line.now)),
    ]
    assert line.timers == {}


def test_hang_up_after_score_keeps_the_score() -> None:
    line = answered_survey()
    line.press("3")
    assert line.hang_up() == []
    assert line.session.finished
    assert line.session.result is not None and line.session.result.value == 3
    assert not line.hung_up  # we never sent Hangup: they did


def test_hang_up_before_answer_records_hung_up() -> None:
    session = survey()
    assert session.handle(HungUp(1.0)) == [RecordResult(Result(HUNG_UP, None, 1.0))]
    assert session.start(2.0) == []


def test_events_before_answer_are_ignored() -> None:
    session = survey()
    assert session.handle(Digit("1", 0.0)) == []
    assert session.handle(PlaybackFinished(GREETING, 0.0)) == []
    assert session.handle(TimerFired("question.no_input.1", 0.0)) == []
    assert [type(a) for a in session.start(1.0)] == [Play]


def test_events_after_finish_are_ignored() -> None:
    line = answered_survey()
    line.press("5")
    line.play_out()
    assert line.session.finished
    for event in (
        Answered(20.0),
        Digit("1", 20.0),
        PlaybackFinished(GOODBYE, 20.0),
        TimerFired("question.no_input.1", 20.0),
        HungUp(20.0),
    ):
        assert line.session.handle(event) == []
    assert line.session.result is not None and line.session.result.value == 5


def test_second_answer_and_unknown_events_are_ignored() -> None:
    line = answered_survey()
    assert line.feed(Answered(5.0)) == []
    assert line.feed(PlaybackFinished(THANKS, 5.0)) == []  # not playing
    assert line.feed(TimerFired("question.no_input.7", 5.0)) == []


def test_stale_timer_after_key_is_ignored() -> None:
    line = answered_survey()
    line.finish()
    line.press("8")  # cancels question.no_input.1, plays the apology
    assert line.feed(TimerFired("question.no_input.1", line.now + 6)) == []
    line.finish()
    line.finish()
    assert line.timers.keys() == {"question.no_input.2"}


def test_flow_without_a_recording_choice_completes() -> None:
    flow = Flow(
        name="notice",
        start="say",
        steps=(Message("say", "notice", next=None),),
        templates={"en": {"notice": "Your invoice was sent."}},
    )
    line = Line(Session(flow, "en", flow.texts("en")))
    line.answer()
    assert line.finish() == [RecordResult(Result(COMPLETED, None, line.now)), Hangup()]


def test_menu_without_apologies_just_asks_again() -> None:
    flow = Flow(
        name="warning",
        start="menu",
        steps=(
            Menu(
                "menu",
                "offer",
                {"1": Choice("bye", "invoice"), "9": Choice("bye", "opt_out")},
                4.0,
                max_repeats=1,
                exhausted="bye",
            ),
            Message("bye", "bye", next=None),
        ),
        templates={"en": {"offer": "Press 1 or 9.", "bye": "Goodbye!"}},
    )
    line = Line(Session(flow, "en", flow.texts("en")))
    line.answer()
    line.finish()
    assert line.wait() == [Play("offer", "Press 1 or 9.", barge_in=True)]
    line.finish()
    assert line.wait() == [
        RecordResult(Result(NO_INPUT, None, line.now)),
        Play("bye", "Goodbye!", barge_in=False),
    ]
    assert line.played == ["offer", "offer", "bye"]


def test_session_needs_every_text_and_a_known_locale() -> None:
    flow = survey_flow()
    texts = flow.texts("en", values={"company": "Acme"})
    del texts[THANKS]
    with pytest.raises(FlowError, match=THANKS):
        Session(flow, "en", texts)
    with pytest.raises(FlowError, match="de"):
        Session(flow, "de", flow.texts("en", values={"company": "Acme"}))


# -- random event sequences ---------------------------------------------------------------------


def random_events(rng: random.Random, session: Session) -> list[tuple[Event, list[Action]]]:
    """Mostly what a line would report for the actions so far, plus stray and late events."""
    log: list[tuple[Event, list[Action]]] = []
    playing: list[str] = []
    timers: list[str] = []
    prompts = sorted(session.flow.prompt_ids)
    kinds = ["finish", "timer", "digit", "hangup", "answer", "stray finish", "stray timer"]
    weights = [7, 4, rng.uniform(0.5, 5), 0.3, 0.5, 1, 1]  # some callers press keys, some do not
    now = 0.0
    event: Event = Answered(now)
    for _ in range(rng.randint(1, 40)):
        actions = session.handle(event)
        log.append((event, actions))
        for action in actions:
            if isinstance(action, Play):
                playing.append(action.prompt_id)
            elif isinstance(action, StartTimer):
                timers.append(action.timer_id)
        now += rng.random() * 3
        kind = rng.choices(kinds, weights)[0]
        if kind == "finish" and playing:
            event = PlaybackFinished(playing.pop(0), now, interrupted=rng.random() < 0.2)
        elif kind == "timer" and timers:
            event = TimerFired(timers.pop(rng.randrange(len(timers))), now)
        elif kind == "digit":
            event = Digit(rng.choice("0123456789*#"), now)
        elif kind == "hangup":
            event = HungUp(now)
        elif kind == "answer":
            event = Answered(now)
        elif kind == "stray finish":
            event = PlaybackFinished(rng.choice(prompts), now, interrupted=rng.random() < 0.5)
        else:
            event = TimerFired(f"question.no_input.{rng.randint(0, 5)}", now)
    return log


@pytest.mark.parametrize("seed", range(400))
def test_random_sequences_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    session = survey()
    log = random_events(rng, session)
    ended = False
    questions = 0
    running: set[str] = set()
    for event, actions in log:
        if isinstance(event, TimerFired):
            running.discard(event.timer_id)
        assert not ended or actions == [], "actions after Hangup"
        plays = [a for a in actions if isinstance(a, Play)]
        assert len(plays) <= 1
        questions += sum(p.prompt_id == QUESTION for p in plays)
        for action in actions:
            if isinstance(action, StartTimer):
                assert not running, "two no-input timers at once"
                running.add(action.timer_id)
            elif isinstance(action, CancelTimer):
                running.remove(action.timer_id)
        ended = ended or Hangup() in actions
    assert questions <= 3
    if ended or session.finished:
        assert session.finished
        assert session.result is not None
    if session.result is not None and session.result.outcome == "score":
        assert session.result.value in range(1, 6)
