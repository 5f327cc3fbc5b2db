"""The warning calls: the flow as data, its paths through a session (driven by a scripted line
that carries out actions the way a backend must), the transfer to the account manager, and the
texts: values in words, locales, the company's spoken form, overrides, bad values."""

from collections.abc import Mapping
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
    Transfer,
)
from ivr.errors import FlowError
from ivr.events import Digit, Event, HungUp, PlaybackFinished, TimerFired, TransferEnded
from ivr.flow import Menu, Message
from ivr.flow import Transfer as TransferStep
from ivr.results import FlowResult
from ivr.session import Session
from ivr.warning import (
    BALANCE,
    CAMPAIGN,
    CONNECTING,
    DAYS_LEFT,
    GOODBYE,
    HELLO,
    HELLO_NAMED,
    INVOICE,
    MANAGER_CALLBACK,
    MENU,
    OPT_OUT,
    SORRY,
    WARNING_PROMPTS,
    WARNING_TEMPLATES,
    WarningReason,
    warning_flow,
    warning_session,
)

TIMEOUT = 4.0
MANAGER_PHONE = "+79161234567"
BALANCE_VALUES = {"balance": "350.50", "currency": "RUB"}
CAMPAIGN_VALUES = {"campaign": "Spring Sale", "stop_date": "2026-11-25"}
EN_MENU = ("To get the invoice again, press 1. To talk to your account manager, press 2. "
           "To stop these calls, press 9.")


def session(
    reason: WarningReason = WarningReason.BALANCE,
    values: Mapping[str, str] | None = None,
    locale: str | None = "en",
    **options: object,
) -> Session:
    if values is None:
        values = BALANCE_VALUES if reason is WarningReason.BALANCE else CAMPAIGN_VALUES
    return warning_session(reason, locale, values, company="Acme", default_locale="en",
                           no_input_timeout_s=TIMEOUT, **options)  # type: ignore[arg-type]


@dataclass
class Line:
    """Carries out a session's actions and feeds events back, with its own clock; checks the
    backend's side of the contract (one prompt at a time, one-shot timers, one transfer)."""

    session: Session
    now: float = 0.0
    playing: Play | None = None
    stopped: list[str] = field(default_factory=list)  # cut prompts whose end is still to come
    timers: dict[str, float] = field(default_factory=dict)
    played: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    transferring: bool = False
    hung_up: bool = False

    def feed(self, event: Event) -> list[Action]:
        actions = self.session.handle(event)
        for action in actions:
            self.apply(action)
        return actions

    def apply(self, action: Action) -> None:
        assert not self.hung_up, f"{action} after Hangup"
        match action:
            case Play():
                assert self.playing is None, f"{action} while {self.playing} plays"
                assert not self.transferring, f"{action} during the transfer"
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
            case Transfer():
                assert self.playing is None and not self.timers and not self.transferring
                self.transferring = True
                self.transfers.append(action.target)
            case RecordResult():
                self.results.append(action.result)
            case Hangup():
                self.hung_up = True

    def answer(self) -> list[Action]:
        actions = self.session.start(self.now)
        for action in actions:
            self.apply(action)
        return actions

    def finish(self) -> list[Action]:
        """The prompt now playing ends."""
        assert self.playing is not None
        prompt, self.playing = self.playing.prompt_id, None
        self.now += 1
        return self.feed(PlaybackFinished(prompt, self.now))

    def press(self, key: str) -> list[Action]:
        """A key; the end of a prompt it cut is reported after it."""
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

    def transfer_ends(self, succeeded: bool) -> list[Action]:
        assert self.transferring
        self.transferring = False
        self.now += 5
        return self.feed(TransferEnded(succeeded, self.now))

    def play_until(self, prompt_id: str) -> None:
        """Let prompts play to their ends until `prompt_id` plays."""
        while self.playing is None or self.playing.prompt_id != prompt_id:
            assert self.playing is not None, f"{prompt_id} never played: {self.played}"
            self.finish()

    def play_out(self) -> None:
        while self.playing is not None:
            self.finish()

    def at_menu(self) -> "Line":
        self.answer()
        self.play_until(MENU)
        return self

    def texts(self) -> list[str]:
        return [self.session.texts[prompt] for prompt in self.played]


def outcomes(line: Line) -> list[FlowResult]:
    return [result.outcome for result in line.results]


# -- the flow as data ----------------------------------------------------------------------------


def test_every_prompt_has_a_text_in_both_languages() -> None:
    every = {HELLO, HELLO_NAMED, BALANCE, DAYS_LEFT, CAMPAIGN, MENU, SORRY, INVOICE, CONNECTING,
             MANAGER_CALLBACK, OPT_OUT, GOODBYE}
    assert every == WARNING_PROMPTS
    assert {locale: set(texts) for locale, texts in WARNING_TEMPLATES.items()} == {
        "en": WARNING_PROMPTS, "ru": WARNING_PROMPTS}


@pytest.mark.parametrize(("reason", "options", "steps"), [
    (WarningReason.BALANCE, {}, ["hello", "balance", "menu", "invoice", "manager_callback",
                                 "opt_out", "goodbye"]),
    (WarningReason.BALANCE, {"days_left": True},
     ["hello", "balance", "days_left", "menu", "invoice", "manager_callback", "opt_out",
      "goodbye"]),
    (WarningReason.CAMPAIGN, {"days_left": True},  # a campaign has no days left
     ["hello", "campaign", "menu", "invoice", "manager_callback", "opt_out", "goodbye"]),
    (WarningReason.CAMPAIGN, {"transfer": True},
     ["hello", "campaign", "menu", "invoice", "connecting", "transfer", "manager_callback",
      "opt_out", "goodbye"]),
])
def test_the_flow_has_only_the_steps_of_the_call(
    reason: WarningReason, options: dict[str, bool], steps: list[str]
) -> None:
    flow = warning_flow(reason, **options)
    assert flow.name == f"{reason.value}_warning"
    assert flow.start == "hello"
    assert [step.id for step in flow.steps] == steps
    assert flow.locales == {"en", "ru"}
    assert all(texts.keys() == flow.prompt_ids for texts in flow.templates.values())


def test_greeting_by_name_only_when_named() -> None:
    assert warning_flow(WarningReason.BALANCE).step("hello") == Message("hello", HELLO, "balance")
    named = warning_flow(WarningReason.BALANCE, named=True)
    assert named.step("hello") == Message("hello", HELLO_NAMED, "balance")
    assert HELLO not in named.prompt_ids


def test_the_transfer_needs_the_manager_phone_value() -> None:
    assert warning_flow(WarningReason.BALANCE).value_names == frozenset()
    flow = warning_flow(WarningReason.BALANCE, transfer=True)
    assert flow.value_names == {"manager_phone"}
    assert flow.step("transfer") == TransferStep("transfer", target="manager_phone",
                                                 failed="manager_callback")
    assert flow.step("connecting") == Message("connecting", CONNECTING, next="transfer")
    menu = flow.step("menu")
    assert isinstance(menu, Menu) and menu.choices["2"].next == "connecting"
    with pytest.raises(FlowError, match=r"no values for \['manager_phone'\]"):
        Session(flow, "en", flow.texts("en", values={"company": "A", "balance": "one ruble"}))


def test_the_menu() -> None:
    menu = warning_flow(WarningReason.CAMPAIGN, no_input_timeout_s=7.5).step("menu")
    assert isinstance(menu, Menu)
    assert {key: (choice.outcome, choice.next) for key, choice in menu.choices.items()} == {
        "1": (FlowResult.INVOICE, "invoice"),
        "2": (FlowResult.MANAGER, "manager_callback"),
        "9": (FlowResult.OPT_OUT, "opt_out"),
    }
    assert (menu.no_input_timeout_s, menu.max_repeats, menu.exhausted) == (7.5, 1, "goodbye")
    assert (menu.invalid_prompt, menu.no_input_prompt) == (SORRY, SORRY)


# -- through a session -------------------------------------------------------------------------


def test_greeting_without_a_name_then_balance_then_menu() -> None:
    line = Line(session())
    assert line.answer() == [Play(HELLO, "Hello! This is Acme.", barge_in=False)]
    assert line.finish() == [Play(
        BALANCE, "Your account balance is low. It is three hundred fifty rubles and fifty "
        "kopecks.", barge_in=False)]
    assert line.finish() == [Play(MENU, EN_MENU, barge_in=True)]
    assert line.finish() == [StartTimer("menu.no_input.1", TIMEOUT)]


def test_greeting_by_name_and_days_left_when_given() -> None:
    line = Line(session(values={**BALANCE_VALUES, "name": "Anna", "days_left": "3"}))
    line.at_menu()
    assert line.played == [HELLO_NAMED, BALANCE, DAYS_LEFT, MENU]
    assert line.texts()[0] == "Hello, Anna! This is Acme."
    assert line.texts()[2] == "Days left at this rate: three."


def test_campaign_message_instead_of_the_balance() -> None:
    line = Line(session(WarningReason.CAMPAIGN, {**CAMPAIGN_VALUES, "days_left": "3"}))
    line.at_menu()
    assert line.played == [HELLO, CAMPAIGN, MENU]  # days left belong to a balance only
    assert line.texts()[1] == "Your ad campaign Spring Sale will stop on November twenty-fifth."


def test_keys_during_the_news_are_ignored() -> None:
    line = Line(session())
    line.answer()
    assert line.press("1") == []
    line.finish()
    assert line.press("9") == []
    line.finish()
    assert line.playing is not None and line.playing.prompt_id == MENU
    assert line.results == []


@pytest.mark.parametrize(("key", "outcome", "confirmation", "text"), [
    ("1", FlowResult.INVOICE, INVOICE, "We will send you the invoice again."),
    ("2", FlowResult.MANAGER, MANAGER_CALLBACK, "Your account manager will call you back."),
    ("9", FlowResult.OPT_OUT, OPT_OUT, "We will not call you again."),
])
@pytest.mark.parametrize("during_menu", [True, False])
def test_a_key_records_its_choice_confirms_it_and_says_goodbye(
    key: str, outcome: FlowResult, confirmation: str, text: str, during_menu: bool
) -> None:
    line = Line(session()).at_menu()
    cut: list[Action] = [StopPlayback()]
    if not during_menu:
        line.finish()  # the menu was heard whole: the key comes while waiting
        cut = [CancelTimer("menu.no_input.1")]
    assert line.press(key) == [*cut, RecordResult(Result(outcome, None, line.now)),
                               Play(confirmation, text, barge_in=False)]
    assert line.finish() == [Play(GOODBYE, "Thank you. Goodbye!", barge_in=False)]
    assert line.finish() == [Hangup()]
    assert line.played[-3:] == [MENU, confirmation, GOODBYE]
    assert outcomes(line) == [outcome]
    assert line.session.finished and line.timers == {} and line.transfers == []


def test_silence_hears_sorry_and_the_menu_once_more_then_goodbye_with_no_input() -> None:
    line = Line(session()).at_menu()
    line.finish()
    assert line.wait() == [Play(SORRY, "Sorry, I did not get that.", barge_in=True)]
    assert line.finish() == [Play(MENU, EN_MENU, barge_in=True)]
    assert line.finish() == [StartTimer("menu.no_input.2", TIMEOUT)]
    assert line.wait() == [RecordResult(Result(FlowResult.NO_INPUT, None, line.now)),
                           Play(GOODBYE, "Thank you. Goodbye!", barge_in=False)]
    assert line.finish() == [Hangup()]
    assert line.played == [HELLO, BALANCE, MENU, SORRY, MENU, GOODBYE]
    assert line.played.count(MENU) == 2


def test_a_wrong_key_twice_records_invalid() -> None:
    line = Line(session()).at_menu()
    assert line.press("5") == [StopPlayback(), Play(SORRY, "Sorry, I did not get that.",
                                                    barge_in=True)]
    line.finish()
    line.finish()  # the menu again, heard whole: the first no-input timer starts
    assert line.press("#") == [CancelTimer("menu.no_input.1"),
                               RecordResult(Result(FlowResult.INVALID, None, line.now)),
                               Play(GOODBYE, "Thank you. Goodbye!", barge_in=False)]
    line.play_out()
    assert line.played == [HELLO, BALANCE, MENU, SORRY, MENU, GOODBYE]
    assert outcomes(line) == [FlowResult.INVALID] and line.hung_up


def test_a_wrong_key_then_a_good_one_counts() -> None:
    line = Line(session()).at_menu()
    line.press("0")
    line.finish()  # sorry
    line.press("1")  # cuts the menu's second time
    line.play_out()
    assert outcomes(line) == [FlowResult.INVOICE]
    assert line.played == [HELLO, BALANCE, MENU, SORRY, MENU, INVOICE, GOODBYE]


def test_hang_up_during_the_menu_records_hung_up() -> None:
    line = Line(session()).at_menu()
    line.finish()
    line.now += 1
    assert line.feed(HungUp(line.now)) == [CancelTimer("menu.no_input.1"),
                                           RecordResult(Result(FlowResult.HUNG_UP, None, 4.0))]
    assert line.session.finished and not line.hung_up


# -- the transfer to the account manager -------------------------------------------------------


def manager_line(**values: str) -> Line:
    return Line(session(values={**BALANCE_VALUES, "manager_phone": MANAGER_PHONE, **values}))


def test_key_2_with_a_manager_phone_connects_and_transfers() -> None:
    line = manager_line().at_menu()
    assert line.press("2") == [
        StopPlayback(),
        RecordResult(Result(FlowResult.MANAGER, None, line.now)),
        Play(CONNECTING, "Connecting you to your account manager.", barge_in=False),
    ]
    assert line.finish() == [Transfer(target=MANAGER_PHONE)]
    assert line.transfers == [MANAGER_PHONE]
    assert line.transfer_ends(succeeded=True) == [
        RecordResult(Result(FlowResult.TRANSFERRED, None, line.now)), Hangup()]
    assert line.session.finished
    assert line.session.result == Result(FlowResult.TRANSFERRED, None, line.now)
    assert outcomes(line) == [FlowResult.MANAGER, FlowResult.TRANSFERRED]
    assert line.played == [HELLO, BALANCE, MENU, CONNECTING]


def test_a_failed_transfer_promises_a_callback_and_keeps_manager() -> None:
    line = manager_line().at_menu()
    line.press("2")
    line.finish()  # connecting
    assert line.transfer_ends(succeeded=False) == [
        Play(MANAGER_CALLBACK, "Your account manager will call you back.", barge_in=False)]
    assert line.finish() == [Play(GOODBYE, "Thank you. Goodbye!", barge_in=False)]
    assert line.finish() == [Hangup()]
    assert outcomes(line) == [FlowResult.MANAGER]
    assert line.session.result is not None and line.session.result.outcome == FlowResult.MANAGER
    assert line.played == [HELLO, BALANCE, MENU, CONNECTING, MANAGER_CALLBACK, GOODBYE]


def test_keys_while_connecting_and_during_the_transfer_are_ignored() -> None:
    line = manager_line().at_menu()
    line.press("2")
    assert line.press("9") == []  # during "connecting"
    line.finish()
    for key in "129#":
        assert line.press(key) == []
    assert line.feed(TimerFired("menu.no_input.1", line.now)) == []  # stale
    assert line.feed(PlaybackFinished(MENU, line.now, interrupted=True)) == []  # stray
    assert line.transfer_ends(succeeded=True)[-1] == Hangup()
    assert outcomes(line) == [FlowResult.MANAGER, FlowResult.TRANSFERRED]


def test_hang_up_during_the_transfer_keeps_manager() -> None:
    line = manager_line().at_menu()
    line.press("2")
    line.finish()
    assert line.feed(HungUp(line.now + 1)) == []
    assert line.session.finished and not line.hung_up
    assert line.session.result is not None and line.session.result.outcome == FlowResult.MANAGER
    assert line.feed(TransferEnded(True, line.now + 2)) == []  # too late: the call is over


def test_transfer_ended_outside_a_transfer_is_ignored() -> None:
    line = manager_line().at_menu()
    assert line.feed(TransferEnded(True, line.now)) == []
    assert line.feed(TransferEnded(False, line.now)) == []
    assert line.results == [] and line.playing is not None and line.playing.prompt_id == MENU


def test_without_a_manager_phone_key_2_never_transfers() -> None:
    line = Line(session()).at_menu()
    line.press("2")
    line.play_out()
    assert line.transfers == []
    assert CONNECTING not in line.session.texts
    assert line.played[-2:] == [MANAGER_CALLBACK, GOODBYE]


def test_a_blank_manager_phone_is_no_manager_phone() -> None:
    line = Line(session(values={**BALANCE_VALUES, "manager_phone": "  "})).at_menu()
    line.press("2")
    line.play_out()
    assert line.transfers == [] and outcomes(line) == [FlowResult.MANAGER]


# -- texts ---------------------------------------------------------------------------------------


def test_english_balance_texts() -> None:
    texts = session(values={**BALANCE_VALUES, "name": "Anna", "days_left": "21",
                            "manager_phone": MANAGER_PHONE}).texts
    assert texts == {
        HELLO_NAMED: "Hello, Anna! This is Acme.",
        BALANCE: "Your account balance is low. It is three hundred fifty rubles and fifty kopecks.",
        DAYS_LEFT: "Days left at this rate: twenty-one.",
        MENU: EN_MENU,
        SORRY: "Sorry, I did not get that.",
        INVOICE: "We will send you the invoice again.",
        CONNECTING: "Connecting you to your account manager.",
        MANAGER_CALLBACK: "Your account manager will call you back.",
        OPT_OUT: "We will not call you again.",
        GOODBYE: "Thank you. Goodbye!",
    }


def test_russian_balance_texts() -> None:
    texts = session(values={**BALANCE_VALUES, "days_left": "21"}, locale="ru-RU").texts
    assert texts[HELLO] == "Здравствуйте! Это Acme."
    assert texts[BALANCE] == (
        "На вашем счёте заканчиваются деньги. Баланс: триста пятьдесят рублей пятьдесят копеек.")
    assert texts[DAYS_LEFT] == "Осталось дней: двадцать один."
    assert texts[MENU] == (
        "Чтобы получить счёт ещё раз, нажмите один. Чтобы поговорить с менеджером, нажмите два. "
        "Чтобы больше не получать такие звонки, нажмите девять.")
    assert texts[GOODBYE] == "Спасибо. До свидания!"


@pytest.mark.parametrize(("values", "en", "ru"), [
    ({"balance": "1000", "currency": "usd"}, "one thousand dollars", "одна тысяча долларов"),
    ({"balance": "0.21", "currency": "RUB"}, "twenty-one kopecks", "двадцать одна копейка"),
    ({"balance": "-2.5", "currency": "EUR"}, "minus two euros and fifty cents",
     "минус два евро пятьдесят центов"),
    ({"balance": "12.5", "currency": "KZT"}, "twelve point five K Z T",
     "двенадцать целых пятьдесят сотых K Z T"),
])
def test_amounts_are_spoken_in_words(values: dict[str, str], en: str, ru: str) -> None:
    assert session(values=values).texts[BALANCE] == f"Your account balance is low. It is {en}."
    assert session(values=values, locale="ru").texts[BALANCE] == (
        f"На вашем счёте заканчиваются деньги. Баланс: {ru}.")


def test_campaign_texts_in_both_languages() -> None:
    en = session(WarningReason.CAMPAIGN).texts
    assert en[CAMPAIGN] == "Your ad campaign Spring Sale will stop on November twenty-fifth."
    ru = session(WarningReason.CAMPAIGN, {"campaign": "Весна", "stop_date": "2026-11-25"},
                 locale="ru").texts
    assert ru[CAMPAIGN] == "Ваша рекламная кампания Весна остановится двадцать пятого ноября."
    assert BALANCE not in ru and DAYS_LEFT not in ru


def test_the_company_is_said_in_its_spoken_form_for_the_locale() -> None:
    spoken = {"ru": "Акме"}
    ru = session(locale="ru", company_spoken=spoken)
    assert ru.texts[HELLO] == "Здравствуйте! Это Акме."
    named = session(values={**BALANCE_VALUES, "name": "Анна"}, locale="ru",
                    company_spoken=spoken)
    assert named.texts[HELLO_NAMED] == "Здравствуйте, Анна! Это Акме."
    assert session(locale="en", company_spoken=spoken).texts[HELLO] == "Hello! This is Acme."
    with pytest.raises(FlowError, match="unknown locales \\['de'\\]"):
        session(company_spoken={"de": "Akme"})


@pytest.mark.parametrize(("requested", "resolved"), [
    ("ru", "ru"), ("ru_RU", "ru"), ("EN-us", "en"), ("de", "en"), (None, "en"), ("", "en"),
])
def test_the_locale_falls_back_to_the_language_then_the_default(
    requested: str | None, resolved: str
) -> None:
    assert session(locale=requested).locale == resolved


def test_overrides_of_warning_prompts_are_applied() -> None:
    overrides = {
        "ru": {BALANCE: "Баланс: {balance}. Пополните счёт, пожалуйста.",
               HELLO: "Добрый день! {company} беспокоит."},
        "en": {GOODBYE: "Bye!"},
    }
    ru = session(locale="ru", overrides=overrides)
    assert ru.texts[BALANCE] == "Баланс: триста пятьдесят рублей пятьдесят копеек. Пополните " \
                                "счёт, пожалуйста."
    assert ru.texts[HELLO] == "Добрый день! Acme беспокоит."
    assert ru.texts[GOODBYE] == "Спасибо. До свидания!"
    assert session(overrides=overrides).texts[GOODBYE] == "Bye!"


def test_overrides_of_prompts_this_call_does_not_speak_are_ignored() -> None:
    overrides = {"en": {
        CAMPAIGN: "{campaign} stops on {stop_date}.",  # placeholders a balance call has not
        CONNECTING: "Hold on, {manager}.",  # no manager phone: no transfer in this call
        HELLO_NAMED: "Hi {name}!",  # no name
        DAYS_LEFT: "{days_left} days to go.",  # no days left
    }}
    texts = session(overrides=overrides).texts
    assert texts.keys() == {HELLO, BALANCE, MENU, SORRY, INVOICE, MANAGER_CALLBACK, OPT_OUT,
                            GOODBYE}
    assert texts[HELLO] == "Hello! This is Acme."


@pytest.mark.parametrize(("overrides", "message"), [
    ({"en": {"warning.typo": "Hi"}}, "override for unknown prompts \\['warning.typo'\\]"),
    ({"en": {"survey.thanks": "Thanks"}}, "override for unknown prompts \\['survey.thanks'\\]"),
    ({"en": {BALANCE: "It is {amount}."}}, "no value for placeholders \\['amount'\\]"),
    ({"ru": {MENU: "Нажмите {key}."}}, "no value for placeholders \\['key'\\]"),  # other locale
    ({"de": {MENU: "Drücken Sie 1."}}, "override for unknown locale 'de'"),
    ({"en": {GOODBYE: " "}}, "empty texts \\['warning.goodbye'\\]"),
])
def test_bad_overrides_are_refused(overrides: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(FlowError, match=message):
        session(overrides=overrides)


@pytest.mark.parametrize(("reason", "values", "message"), [
    (WarningReason.BALANCE, {"balance": "abc", "currency": "RUB"}, "not an amount: 'abc'"),
    (WarningReason.BALANCE, {"balance": "NaN", "currency": "RUB"}, "not an amount: 'NaN'"),
    (WarningReason.BALANCE, {"balance": "350.50"}, "without its 'currency'"),
    (WarningReason.BALANCE, {"balance": "350.50", "currency": " "}, "without its 'currency'"),
    (WarningReason.BALANCE, {"currency": "RUB"}, "without its 'balance'"),
    (WarningReason.BALANCE, {"balance": "350.50", "currency": "rubles"},
     "not a currency code: 'rubles'"),
    (WarningReason.BALANCE, {"balance": "1e30", "currency": "RUB"}, "cannot speak"),
    (WarningReason.BALANCE, {**BALANCE_VALUES, "days_left": "3.5"}, "not a whole number: '3.5'"),
    (WarningReason.CAMPAIGN, {"campaign": "Spring", "stop_date": "tomorrow"},
     "not a date: 'tomorrow'"),
    (WarningReason.CAMPAIGN, {"campaign": "Spring", "stop_date": "25.11.2026"},
     "not a date: '25.11.2026'"),
    (WarningReason.CAMPAIGN, {"stop_date": "2026-11-25"}, "without its 'campaign'"),
    (WarningReason.CAMPAIGN, {"campaign": "Spring"}, "without its 'stop_date'"),
])
def test_missing_or_malformed_values_are_refused_clearly(
    reason: WarningReason, values: dict[str, str], message: str
) -> None:
    with pytest.raises(FlowError, match=message):
        session(reason, values)
