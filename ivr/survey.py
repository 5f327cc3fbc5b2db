"""The post-call CSAT survey: greeting, a 1-5 rating by keypad, thanks, goodbye.

Silence or a wrong key asks again (twice at most, so the question is heard at most three times),
then says goodbye. Results: `FlowResult.SCORE` with the key's value 1-5, or `no_input` /
`invalid` when the repeats ran out, or `hung_up`. Texts exist in English and Russian;
configuration may replace any of them per locale (`overrides`); `{company}` is filled from the
caller's value, or from its spoken form for the locale (`company_spoken`, locale -> text): a
Latin name in a Russian sentence makes the Russian voice switch to English for it, "Акме" does
not.
"""

from collections.abc import Mapping

from ivr.company import company_value
from ivr.flow import Choice, Flow, Menu, Message, Templates
from ivr.results import FlowResult
from ivr.session import Session

GREETING = "survey.greeting"
QUESTION = "survey.question"
INVALID_KEY = "survey.invalid_key"
NO_KEY = "survey.no_key"
THANKS = "survey.thanks"
GOODBYE = "survey.goodbye"

MAX_REPEATS = 2
DEFAULT_NO_INPUT_TIMEOUT_S = 6.0

SURVEY_TEMPLATES: Templates = {
    "en": {
        GREETING: (
            "Hello! This is a short survey from {company} "
            "about your recent call with our support team."
        ),
        QUESTION: (
            "Please rate the call from 1 to 5, where 5 is excellent. Press a key from 1 to 5."
        ),
        INVALID_KEY: "Sorry, I did not get that.",
        NO_KEY: "Sorry, I did not hear your answer.",
        THANKS: "Thank you for your answer!",
        GOODBYE: "Goodbye!",
    },
    "ru": {
        GREETING: (
            "Здравствуйте! Это короткий опрос компании {company} "
            "о вашем недавнем разговоре со службой поддержки."  # noqa: RUF001 (Russian words)
        ),
        QUESTION: (
            "Пожалуйста, оцените разговор от одного до пяти, где пять — отлично. "
            "Нажмите клавишу от одного до пяти."
        ),
        INVALID_KEY: "Извините, мы вас не поняли.",
        NO_KEY: "Извините, мы не услышали ответа.",
        THANKS: "Спасибо за ваш ответ!",
        GOODBYE: "До свидания!",
    },
}


def survey_flow(*, no_input_timeout_s: float = DEFAULT_NO_INPUT_TIMEOUT_S) -> Flow:
    scores = {str(n): Choice(next="thanks", outcome=FlowResult.SCORE, value=n) for n in range(1, 6)}
    return Flow(
        name="survey",
        start="greeting",
        steps=(
            Message("greeting", GREETING, next="question"),
            Menu(
                "question",
                QUESTION,
                choices=scores,
                no_input_timeout_s=no_input_timeout_s,
                max_repeats=MAX_REPEATS,
                exhausted="goodbye",
                invalid_prompt=INVALID_KEY,
                no_input_prompt=NO_KEY,
            ),
            Message("thanks", THANKS, next="goodbye"),
            Message("goodbye", GOODBYE, next=None),
        ),
        templates=SURVEY_TEMPLATES,
    )


def survey_texts(
    locale: str | None,
    overrides: Templates | None = None,
    *,
    company: str,
    default_locale: str,
    company_spoken: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every survey text for `locale` (or its language, else `default_locale`), with
    configuration's `overrides` (locale -> prompt id -> text) applied and `{company}` filled:
    with `company_spoken[locale]` where given, else `company`.
    Raises `FlowError` for a bad override, an unknown default locale, an empty company, or a
    spoken form that is empty or for a locale the survey has no texts for."""
    flow = survey_flow()
    resolved = flow.resolve_locale(locale, default_locale)
    return flow.texts(resolved, overrides=overrides,
                      values={"company": company_value(flow, resolved, company, company_spoken)})


def survey_session(
    locale: str | None,
    *,
    company: str,
    default_locale: str,
    overrides: Templates | None = None,
    company_spoken: Mapping[str, str] | None = None,
    no_input_timeout_s: float = DEFAULT_NO_INPUT_TIMEOUT_S,
) -> Session:
    """A session for one survey call; `session.locale` tells the language fallback chose, and
    `session.texts` holds everything to render before dialling."""
    flow = survey_flow(no_input_timeout_s=no_input_timeout_s)
    resolved = flow.resolve_locale(locale, default_locale)
    texts = survey_texts(resolved, overrides, company=company, default_locale=default_locale,
                         company_spoken=company_spoken)
    return Session(flow, resolved, texts)
