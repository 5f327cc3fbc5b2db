"""The survey flow's texts (locales, fallback, overrides, placeholders) and flow validation."""

import pytest

from ivr.actions import Play
from ivr.errors import FlowError
from ivr.flow import Choice, Flow, Menu, Message
from ivr.survey import (
    GOODBYE,
    GREETING,
    INVALID_KEY,
    NO_KEY,
    QUESTION,
    SURVEY_TEMPLATES,
    THANKS,
    survey_flow,
    survey_session,
    survey_texts,
)

GOODBYE_RU = "Всего доброго!"  # noqa: RUF001 (Russian)
ALL_PROMPTS = {GREETING, QUESTION, INVALID_KEY, NO_KEY, THANKS, GOODBYE}


def test_flow_exposes_every_prompt_in_both_languages() -> None:
    flow = survey_flow()
    assert flow.prompt_ids == ALL_PROMPTS
    assert flow.locales == {"en", "ru"}
    for locale in ("en", "ru"):
        texts = flow.texts(locale, values={"company": "Acme"})
        assert texts.keys() == ALL_PROMPTS
        assert all(text.strip() and "{" not in text for text in texts.values())


def test_english_texts() -> None:
    texts = survey_texts("en", company="Acme", default_locale="ru")
    assert texts == {
        GREETING: "Hello! This is a short survey from Acme "
        "about your recent call with our support team.",
        QUESTION: "Please rate the call from 1 to 5, where 5 is excellent. "
        "Press a key from 1 to 5.",
        INVALID_KEY: "Sorry, I did not get that.",
        NO_KEY: "Sorry, I did not hear your answer.",
        THANKS: "Thank you for your answer!",
        GOODBYE: "Goodbye!",
    }


def test_russian_texts() -> None:
    texts = survey_texts("ru", company="Ромашка", default_locale="en")
    assert texts[GREETING].startswith("Здравствуйте! Это короткий опрос компании Ромашка ")
    assert "от одного до пяти" in texts[QUESTION]
    assert texts[GOODBYE] == "До свидания!"


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        ("ru", "ru"),
        ("ru-RU", "ru"),
        ("ru_RU", "ru"),
        ("EN-gb", "en"),
        ("de", "ru"),  # unknown: the caller's default
        ("", "ru"),
        (None, "ru"),
    ],
)
def test_locale_resolution_and_fallback(requested: str | None, resolved: str) -> None:
    flow = survey_flow()
    assert flow.resolve_locale(requested, "ru") == resolved
    texts = survey_texts(requested, company="Acme", default_locale="ru")
    assert texts == flow.texts(resolved, values={"company": "Acme"})


def test_unknown_default_locale_is_refused() -> None:
    with pytest.raises(FlowError, match="default locale"):
        survey_texts("de", company="Acme", default_locale="fr")


def test_session_speaks_the_resolved_locale() -> None:
    session = survey_session("de-DE", company="Acme", default_locale="EN")
    assert session.locale == "en"
    assert session.start(0.0) == [Play(GREETING, session.texts[GREETING], barge_in=False)]
    assert "Acme" in session.texts[GREETING]


def test_overrides_replace_only_the_given_texts_of_their_locale() -> None:
    overrides = {
        "en": {THANKS: "Thanks a lot, {company} appreciates it!"},
        "ru": {GOODBYE: GOODBYE_RU},
    }
    en = survey_texts("en", overrides, company="Acme", default_locale="en")
    assert en[THANKS] == "Thanks a lot, Acme appreciates it!"
    assert en[GOODBYE] == "Goodbye!"
    ru = survey_texts("ru", overrides, company="Acme", default_locale="en")
    assert ru[GOODBYE] == GOODBYE_RU
    assert ru[THANKS] == SURVEY_TEMPLATES["ru"][THANKS]


def test_session_uses_overridden_texts() -> None:
    session = survey_session(
        "en",
        company="Acme",
        default_locale="en",
        overrides={"en": {GREETING: "Hi from {company}."}},
    )
    assert session.start(0.0) == [Play(GREETING, "Hi from Acme.", barge_in=False)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"de": {THANKS: "Danke!"}}, "unknown locale 'de'"),
        ({"en": {"survey.typo": "Hi"}}, "unknown prompts"),
        ({"en": {THANKS: "  "}}, "empty texts"),
        ({"ru": {THANKS: "Спасибо, {name}!"}}, "placeholders \\['name'\\]"),  # other locale too
    ],
)
def test_bad_overrides_are_refused(overrides: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(FlowError, match=message):
        survey_texts("en", overrides, company="Acme", default_locale="en")


def test_placeholders_are_filled_once_and_other_braces_kept() -> None:
    overrides = {"en": {THANKS: "Thanks from {company}! {{ not a placeholder: {1} }}"}}
    texts = survey_texts("en", overrides, company="{company} & {x}", default_locale="en")
    assert texts[THANKS] == "Thanks from {company} & {x}! {{ not a placeholder: {1} }}"
    assert texts[GREETING].startswith("Hello! This is a short survey from {company} & {x} about")


def test_company_must_not_be_blank() -> None:
    with pytest.raises(FlowError, match="company"):
        survey_texts("en", company=" ", default_locale="en")


def test_survey_menu_shape() -> None:
    flow = survey_flow(no_input_timeout_s=4.5)
    menu = flow.step("question")
    assert isinstance(menu, Menu)
    assert menu.no_input_timeout_s == 4.5
    assert menu.max_repeats == 2
    assert {key: (c.outcome, c.value) for key, c in menu.choices.items()} == {
        str(n): ("score", n) for n in range(1, 6)
    }


# -- flow definitions that cannot be used ---------------------------------------------------------


def menu(**changes: object) -> Menu:
    fields: dict[str, object] = {
        "id": "m",
        "prompt": "q",
        "choices": {"1": Choice(None, "one")},
        "no_input_timeout_s": 5.0,
        "max_repeats": 1,
        "exhausted": None,
    }
    fields.update(changes)
    return Menu(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"choices": {}}, "no choices"),
        ({"choices": {"x": Choice(None)}}, "not DTMF keys"),
        ({"choices": {"12": Choice(None)}}, "not DTMF keys"),
        ({"no_input_timeout_s": 0.0}, "timeout"),
        ({"max_repeats": -1}, "max_repeats"),
    ],
)
def test_bad_menus_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(FlowError, match=message):
        menu(**changes)


def test_choice_value_needs_an_outcome() -> None:
    with pytest.raises(FlowError, match="without an outcome"):
        Choice(None, value=3)


def test_menu_choices_are_frozen() -> None:
    choices = {"1": Choice(None, "one")}
    built = menu(choices=choices)
    choices["2"] = Choice(None, "two")
    assert set(built.choices) == {"1"}
    with pytest.raises(TypeError):
        built.choices["3"] = Choice(None)  # type: ignore[index]


@pytest.mark.parametrize(
    ("steps", "start", "templates", "message"),
    [
        ((Message("a", "p", None),), "b", {"en": {"p": "x"}}, "no start step"),
        ((Message("a", "p", "zz"),), "a", {"en": {"p": "x"}}, "unknown \\['zz'\\]"),
        ((menu(exhausted="gone"),), "m", {"en": {"q": "x"}}, "unknown \\['gone'\\]"),
        ((Message("a", "p", None), Message("a", "p", None)), "a", {"en": {"p": "x"}}, "two steps"),
        ((Message("a", "p", None),), "a", {}, "no texts"),
        ((Message("a", "p", None),), "a", {"en": {}}, "missing texts \\['p'\\]"),
        ((Message("a", "p", None),), "a", {"en": {"p": "x", "o": "y"}}, "unknown prompts"),
        ((Message("a", "p", None),), "a", {"EN": {"p": "x"}}, "lower-case"),
    ],
)
def test_bad_flows_are_refused(
    steps: tuple[Message | Menu, ...],
    start: str,
    templates: dict[str, dict[str, str]],
    message: str,
) -> None:
    with pytest.raises(FlowError, match=message):
        Flow(name="bad", start=start, steps=steps, templates=templates)


def test_texts_for_an_unknown_locale_are_refused() -> None:
    with pytest.raises(FlowError, match="no texts for locale 'de'"):
        survey_flow().texts("de", values={"company": "Acme"})
