"""The company name's spoken form per locale: a Latin name is not read by the Russian voice in
English mid-sentence when configuration gives it in Cyrillic."""

import pytest

from api.app import build_flows
from infra.settings import Settings
from ivr.actions import Play
from ivr.errors import FlowError
from ivr.survey import GREETING, survey_session, survey_texts

SPOKEN = {"ru": "Акме"}


def test_the_russian_prompts_speak_the_spoken_form() -> None:
    texts = survey_texts("ru-RU", company="Acme", default_locale="en", company_spoken=SPOKEN)
    assert texts[GREETING] == (
        "Здравствуйте! Это короткий опрос компании Акме "
        "о вашем недавнем разговоре со службой поддержки."  # noqa: RUF001 (Russian)
    )
    assert not any("Acme" in text for text in texts.values())


def test_a_locale_without_a_spoken_form_uses_the_written_name() -> None:
    texts = survey_texts("en", company="Acme", default_locale="en", company_spoken=SPOKEN)
    assert texts[GREETING].startswith("Hello! This is a short survey from Acme about")


def test_overrides_get_the_spoken_form_too() -> None:
    texts = survey_texts("ru", {"ru": {GREETING: "Вас приветствует {company}."}},  # noqa: RUF001
                         company="Acme", default_locale="ru", company_spoken=SPOKEN)
    assert texts[GREETING] == "Вас приветствует Акме."  # noqa: RUF001 (Russian)


def test_the_session_plays_and_renders_the_spoken_form() -> None:
    session = survey_session("ru", company="Acme", default_locale="en", company_spoken=SPOKEN)
    (greeting,) = session.start(0.0)
    assert isinstance(greeting, Play) and "компании Акме " in greeting.text
    assert "Акме" in session.texts[GREETING]


@pytest.mark.parametrize(
    ("spoken", "message"),
    [
        ({"de": "Akme"}, "unknown locales \\['de'\\]"),
        ({"ru-RU": "Акме"}, "unknown locales \\['ru-RU'\\]"),
        ({"ru": " "}, "empty spoken company name for \\['ru'\\]"),
    ],
)
def test_bad_spoken_forms_are_refused_whichever_locale_is_asked(
    spoken: dict[str, str], message: str
) -> None:
    with pytest.raises(FlowError, match=message):
        survey_texts("en", company="Acme", default_locale="en", company_spoken=spoken)


def test_the_setting_is_json_from_the_environment_and_reaches_the_survey(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RINGBACK_COMPANY_NAME", "Acme")
    monkeypatch.setenv("RINGBACK_COMPANY_NAME_SPOKEN", '{"ru": "Акме"}')
    settings = Settings(_env_file=None)
    assert settings.company_name_spoken == SPOKEN
    flows = build_flows(settings)
    assert "компании Акме " in flows.session("survey", "ru", {}).texts[GREETING]
    assert "from Acme " in flows.session("survey", "en", {}).texts[GREETING]


def test_by_default_every_locale_speaks_the_written_name() -> None:
    settings = Settings(_env_file=None, company_name="Acme")
    assert settings.company_name_spoken == {}
    texts = build_flows(settings).session("survey", "ru", {}).texts
    assert "компании Acme " in texts[GREETING]
