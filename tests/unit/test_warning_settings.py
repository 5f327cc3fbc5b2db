"""The warning calls' settings, judged by the code that uses them (`api.config_check`): retry
delays by `campaigns.purpose`, calling hours like the calling window's, text overrides by the
flow catalog, the manager's phone by the CRM events' phone parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from api.config_check import check_settings
from infra.settings import Settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean `RINGBACK_` environment and a working directory without a `.env`."""
    for name in [name for name in os.environ if name.startswith("RINGBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def problems_named(env: pytest.MonkeyPatch, **variables: str) -> list[str]:
    for name, value in variables.items():
        env.setenv(f"RINGBACK_{name.upper()}", value)
    return [str(problem) for problem in check_settings().problems]


def test_the_defaults_have_no_problems(environment: pytest.MonkeyPatch) -> None:
    assert problems_named(environment) == []
    settings = Settings(_env_file=None)
    assert (settings.warning_retry_delays, settings.warning_calling_hours,
            settings.warning_texts, settings.manager_phone) == ("15m, 1h, next-window", None,
                                                                 {}, None)


@pytest.mark.parametrize(("variables", "expected"), [
    ({"warning_retry_delays": "15m, soon"},
     "RINGBACK_WARNING_RETRY_DELAYS: retry delay 'soon': use a positive whole number"),
    ({"warning_retry_delays": "0m"}, "RINGBACK_WARNING_RETRY_DELAYS: retry delay '0m'"),
    ({"warning_retry_delays": "15m,,1h"}, "RINGBACK_WARNING_RETRY_DELAYS: retry delay ''"),
    ({"warning_retry_delays": "1.5h"}, "RINGBACK_WARNING_RETRY_DELAYS: retry delay '1.5h'"),
    ({"warning_calling_hours": "mon-fry 10:00-20:00"},
     "RINGBACK_WARNING_CALLING_HOURS: unknown day 'fry'"),
    ({"warning_calling_hours": "mon-fri 20:00-10:00"},
     "RINGBACK_WARNING_CALLING_HOURS: hours must start before they end"),
    ({"warning_calling_hours": "mon-fri 9-21"}, "RINGBACK_WARNING_CALLING_HOURS: bad hours"),
    ({"warning_texts": '{"ru": {"warning.typo": "Привет"}}'},
     "RINGBACK_WARNING_TEXTS: override for unknown prompts ['warning.typo']: the warnings' "
     "prompts are warning.balance, "),
    ({"warning_texts": '{"ru": {"survey.thanks": "Спасибо"}}'},  # the survey's, not a warning's
     "RINGBACK_WARNING_TEXTS: override for unknown prompts ['survey.thanks']"),
    ({"warning_texts": '{"de": {"warning.menu": "Drücken Sie 1."}}'},
     "RINGBACK_WARNING_TEXTS: flow 'balance_warning': override for unknown locale 'de'"),
    ({"warning_texts": '{"en": {"warning.goodbye": " "}}'},
     "RINGBACK_WARNING_TEXTS: flow 'balance_warning', locale 'en': empty texts"),
    ({"warning_texts": '{"en": {"warning.balance": "It is {amount}."}}'},
     "RINGBACK_WARNING_TEXTS: flow 'balance_warning', locale 'en', prompt 'warning.balance': "
     "no value for placeholders ['amount']"),
    ({"warning_texts": '{"ru": {"warning.menu": "Баланс {balance}. Нажмите 1."}}'},
     "prompt 'warning.menu': no value for placeholders ['balance']"),  # a campaign has none
    ({"warning_texts": '{"en": {"warning.hello": "Hello, {name}!"}}'},
     "prompt 'warning.hello': no value for placeholders ['name']"),  # said when there is none
    ({"warning_texts": '{"en": {"warning.balance": "{balance}, {days_left} days left."}}'},
     "prompt 'warning.balance': no value for placeholders ['days_left']"),  # days left optional
    ({"manager_phone": "+7 916 123-45-67"}, "RINGBACK_MANAGER_PHONE: write it in E.164"),
    ({"manager_phone": "89161234567"}, "RINGBACK_MANAGER_PHONE: write it in E.164"),
    ({"manager_phone": "+7916"}, "RINGBACK_MANAGER_PHONE: is not a valid phone number"),
    ({"manager_phone": "+78091234567"},
     "RINGBACK_MANAGER_PHONE: is a premium rate number, which ringback does not call"),
    ({"manager_phone": "+7 916 CALL-ME"}, "RINGBACK_MANAGER_PHONE: must not contain letters"),
    ({"manager_phone": "sip:manager@pbx.example"},
     "RINGBACK_MANAGER_PHONE: must not contain letters"),
    ({"manager_phone": ""}, "RINGBACK_MANAGER_PHONE: must be 1 to 64 characters long"),
])
def test_bad_warning_settings_are_named(
    environment: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    [problem] = problems_named(environment, **variables)
    assert expected in problem


def test_good_warning_settings_have_no_problems(environment: pytest.MonkeyPatch) -> None:
    assert problems_named(
        environment,
        warning_retry_delays="90s, 15m, 2h, 1d, next-window",
        warning_calling_hours="mon-fri 10:00-20:00; sat 11:00-15:00",
        warning_texts=(
            '{"ru": {"warning.hello_named": "Добрый день, {name}! Это {company}.",'
            ' "warning.balance": "Баланс: {balance}.", "warning.days_left": "{days_left}, '
            '{balance}.", "warning.campaign": "{campaign}: {stop_date}.",'
            ' "warning.menu": "{company}: нажмите 1, 2 или 9."},'
            ' "en": {"warning.connecting": "Putting you through."}}'
        ),
        manager_phone="+74951234567",
    ) == []


def test_the_phone_is_parsed_in_the_default_region(environment: pytest.MonkeyPatch) -> None:
    assert problems_named(environment, manager_phone="+4915123456789", default_region="DE") == []


def test_an_empty_warning_calling_hours_falls_back_like_unset(
    environment: pytest.MonkeyPatch,
) -> None:
    """The app takes `warning_calling_hours or calling_window_hours`: empty is unset."""
    assert problems_named(environment, warning_calling_hours="") == []


def test_warning_texts_must_be_json_objects(environment: pytest.MonkeyPatch) -> None:
    [problem] = problems_named(environment, warning_texts='{"ru": {"warning.menu": "Наж')
    assert problem.startswith("RINGBACK_WARNING_TEXTS: not valid JSON")


def test_every_warning_problem_is_named_at_once(environment: pytest.MonkeyPatch) -> None:
    problems = problems_named(
        environment, warning_retry_delays="soon", warning_calling_hours="mon-fry 10:00-20:00",
        warning_texts='{"en": {"warning.typo": "x"}}', manager_phone="+7916",
    )
    assert [problem.split(":")[0] for problem in problems] == [
        "RINGBACK_WARNING_RETRY_DELAYS", "RINGBACK_WARNING_CALLING_HOURS",
        "RINGBACK_WARNING_TEXTS", "RINGBACK_MANAGER_PHONE",
    ]
