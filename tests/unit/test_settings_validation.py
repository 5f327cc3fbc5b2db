"""Every setting is judged when the settings are built: `Settings()` for what infra can judge,
`api.config_check` for what only the domain can (hours, holidays, survey texts)."""

from __future__ import annotations

import base64
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.config_check import check_settings, load_settings, mask_url, rows
from infra.errors import InvalidSettings
from infra.settings import (
    DEV_OUTBOUND_SECRET,
    DEV_WEBHOOK_SECRET,
    Settings,
    UnavailablePolicy,
)


def refused(**values: Any) -> dict[str, str]:
    """Setting name -> message, for each value `Settings` refuses."""
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    return {str(error["loc"][0]): error["msg"]
            for error in caught.value.errors(include_input=False)}


def secret_of(size: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * size).decode()


GOOD_SECRETS: dict[str, Any] = {"crm_webhook_secret": secret_of(32),
                                "crm_outbound_secret": secret_of(24)}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean `RINGBACK_` environment and a working directory without a `.env`."""
    for name in [name for name in os.environ if name.startswith("RINGBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# --- time zones, phone region, company -----------------------------------------------------


@pytest.mark.parametrize("setting", ["default_timezone", "calendar_timezone"])
@pytest.mark.parametrize("zone", ["Europe/Moskow", "localtime", "../etc/passwd", ""])
def test_unknown_time_zones_are_refused(setting: str, zone: str) -> None:
    problems = refused(**{setting: zone})
    assert list(problems) == [setting]
    assert "Europe/Moscow" in problems[setting]  # says what a zone looks like


def test_known_time_zones_are_kept() -> None:
    settings = Settings(_env_file=None, default_timezone="Asia/Vladivostok",
                        calendar_timezone="UTC")
    assert (settings.default_timezone, settings.calendar_timezone) == ("Asia/Vladivostok", "UTC")


def test_unknown_phone_region_is_refused_and_a_known_one_upper_cased() -> None:
    assert "unknown phone region 'XX'" in refused(default_region="XX")["default_region"]
    assert Settings(_env_file=None, default_region="de").default_region == "DE"


def test_blank_company_name_is_refused() -> None:
    assert "must not be empty" in refused(company_name="  ")["company_name"]


# --- the dial template ---------------------------------------------------------------------


@pytest.mark.parametrize(("template", "expected"), [
    ("sip:trunk@10.0.0.5", "must contain {phone} or {digits}"),
    ("{user}@trunk", "not {user}"),
    ("sip:{phone}@{host}", "not {host}"),
    ("{}", "not {}"),
    ("{0}", "not {0}"),
    ("{phone!r}", "not {phone!r}"),
    ("{digits:>12}", "not {digits:>12}"),
    ("{phone.real}", "not {phone.real}"),
    ("sip:{phone@trunk", "bad syntax"),
    ("sip:}{phone}", "bad syntax"),
])
def test_bad_dial_templates_are_refused(template: str, expected: str) -> None:
    assert expected in refused(sip_dial_template=template)["sip_dial_template"]


@pytest.mark.parametrize("template", [
    "{phone}", "{digits}", "sip:{digits}@trunk.example.net:5070", "sip:8{digits}@10.0.0.5",
    "{{x}}{phone}",
])
def test_good_dial_templates_are_kept(template: str) -> None:
    assert Settings(_env_file=None, sip_dial_template=template).sip_dial_template == template


# --- database and CRM URLs -----------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("postgres://ringback:s3cretpw@db/ringback", "write postgresql+psycopg://"),
    ("postgresql://ringback:s3cretpw@db/ringback", "write postgresql+psycopg://"),
    ("postgresql+psycopg2://ringback:s3cretpw@db/ringback", "write postgresql+psycopg://"),
    ("mysql://ringback:s3cretpw@db/ringback", "SQLite and PostgreSQL only"),
    ("sqlite://", "SQLite needs a file"),
    ("sqlite:///:memory:", "SQLite needs a file"),
    ("s3cretpw", "not a database URL"),
    ("", "not a database URL"),
])
def test_unsupported_database_urls_are_refused_saying_what_to_write(
    url: str, expected: str
) -> None:
    message = refused(database_url=url)["database_url"]
    assert expected in message
    assert "s3cretpw" not in message


@pytest.mark.parametrize("url", ["sqlite:///data/x.db", "sqlite:////var/lib/ringback/x.db",
                                 "postgresql+psycopg://u:p%40ss@db:5432/ringback"])
def test_supported_database_urls_are_kept(url: str) -> None:
    assert Settings(_env_file=None, database_url=url).database == url


@pytest.mark.parametrize("url", ["ftp://crm.example/hook", "crm.example/hook", "https://", ""])
def test_crm_url_must_be_http(url: str) -> None:
    assert "http:// or https://" in refused(crm_url=url)["crm_url"]


def test_https_crm_url_is_kept() -> None:
    url = "https://crm.example/hooks/ringback?key=abc"
    assert Settings(_env_file=None, crm_url=url).crm_url == url


# --- the pre-dial CRM check ----------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("https://crm.example/check", "must contain {client_id}"),
    ("https://crm.example/{phone}/{client_id}", "not {phone}"),
    ("https://crm.example/{client_id!r}", "not {client_id!r}"),
    ("https://crm.example/{client_id", "bad syntax"),
    ("ftp://crm.example/{client_id}", "http:// or https://"),
    ("{client_id}", "http:// or https://"),
])
def test_bad_check_urls_are_refused(url: str, expected: str) -> None:
    assert expected in refused(crm_check_url=url)["crm_check_url"]


def test_check_settings_are_kept_and_the_policy_read_in_any_case(
    environment: pytest.MonkeyPatch,
) -> None:
    url = "https://crm.example/ringback/clients/{client_id}/call-check?key=abc"
    environment.setenv("RINGBACK_CRM_CHECK_URL", url)
    environment.setenv("RINGBACK_CRM_CHECK_ON_UNAVAILABLE", "Postpone")
    environment.setenv("RINGBACK_CRM_CHECK_POSTPONE_S", "60")
    settings = Settings()
    assert (settings.crm_check_url, settings.crm_check_on_unavailable,
            settings.crm_check_postpone_s) == (url, UnavailablePolicy.POSTPONE, 60.0)


def test_check_defaults() -> None:
    settings = Settings(_env_file=None)
    assert (settings.crm_check_url, settings.crm_check_timeout_s,
            settings.crm_check_on_unavailable, settings.crm_check_postpone_s) == (
        None, 2.0, UnavailablePolicy.CALL, 300.0)


@pytest.mark.parametrize(("values", "setting"), [
    ({"crm_check_timeout_s": 0.05}, "crm_check_timeout_s"),
    ({"crm_check_timeout_s": 11}, "crm_check_timeout_s"),
    ({"crm_check_postpone_s": 0}, "crm_check_postpone_s"),
    ({"crm_check_on_unavailable": "retry"}, "crm_check_on_unavailable"),
])
def test_check_values_out_of_range_are_refused(values: dict[str, Any], setting: str) -> None:
    assert list(refused(**values)) == [setting]


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [
    "hunter2", "whsec_YQ==", "whsec_!!!!not-base64!!!!", secret_of(23), "YWJj" * 10,
    DEV_WEBHOOK_SECRET, DEV_OUTBOUND_SECRET,
])
@pytest.mark.parametrize("setting", ["crm_webhook_secret", "crm_outbound_secret"])
def test_production_refuses_weak_secrets_without_echoing_them(setting: str, secret: str) -> None:
    problems = refused(**{**GOOD_SECRETS, "environment": "production", setting: secret})
    assert list(problems) == [setting]
    message = problems[setting]
    assert secret not in message and secret.removeprefix("whsec_") not in message
    assert "openssl rand -base64 32" in message  # how to make a good one


def test_production_takes_24_random_bytes_or_more() -> None:
    settings = Settings(_env_file=None, environment="production", **GOOD_SECRETS)
    assert settings.crm_outbound_secret.get_secret_value() == secret_of(24)


def test_development_keeps_its_built_in_secrets() -> None:
    settings = Settings(_env_file=None)
    assert settings.crm_webhook_secret.get_secret_value() == DEV_WEBHOOK_SECRET
    assert settings.crm_outbound_secret.get_secret_value() == DEV_OUTBOUND_SECRET


def test_development_still_refuses_an_unusable_secret() -> None:
    assert "whsec_ + base64" in refused(crm_webhook_secret="whsec_!!!")["crm_webhook_secret"]


# --- JSON values from the environment ------------------------------------------------------


def test_extra_days_are_iso_dates_from_json(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("RINGBACK_CALENDAR_EXTRA_HOLIDAYS", '["2026-12-31", "2027-01-09"]')
    assert Settings().calendar_extra_holidays == [date(2026, 12, 31), date(2027, 1, 9)]


@pytest.mark.parametrize(("value", "expected"), [
    ('["2026-13-01"]', "bad date '2026-13-01'"),
    ('["31.12.2026"]', "bad date '31.12.2026'"),
    ('["2026-12-31T10:00"]', "bad date"),
    ("[20261231]", "bad date 20261231"),
    ("2026-12-31", "not valid JSON"),
    ('{"day": "2026-12-31"}', "expected a JSON list"),
])
@pytest.mark.parametrize("setting", ["calendar_extra_holidays", "calendar_extra_working_days"])
def test_bad_extra_days_are_refused(
    environment: pytest.MonkeyPatch, setting: str, value: str, expected: str
) -> None:
    environment.setenv(f"RINGBACK_{setting.upper()}", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [error] = caught.value.errors()
    assert error["loc"][0] == setting and expected in error["msg"]


@pytest.mark.parametrize(("value", "expected"), [
    ('{"ru": {"survey.question": "Оцените', "not valid JSON"),
    ('["ru"]', "valid dictionary"),
    ('{"ru": {"survey.question": 5}}', "valid string"),
])
def test_bad_survey_texts_json_is_refused(
    environment: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    environment.setenv("RINGBACK_SURVEY_TEXTS", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    [error] = caught.value.errors()
    assert error["loc"][0] == "survey_texts" and expected in error["msg"]


# --- what only the domain can judge, and every problem at once ------------------------------


def problems_named(env: pytest.MonkeyPatch, **variables: str) -> list[str]:
    for name, value in variables.items():
        env.setenv(f"RINGBACK_{name.upper()}", value)
    return [str(problem) for problem in check_settings().problems]


@pytest.mark.parametrize(("variables", "expected"), [
    ({"calendar_hours": "mon-fry 10:00-19:00"}, "RINGBACK_CALENDAR_HOURS: unknown day 'fry'"),
    ({"calendar_hours": "mon-fri 19:00-10:00"}, "RINGBACK_CALENDAR_HOURS: hours must start"),
    ({"calling_window_hours": "mon-fri 9-21"}, "RINGBACK_CALLING_WINDOW_HOURS: bad hours"),
    ({"calling_window_hours": "mon-fri 09:00-21:00; fri 10:00-12:00"},
     "RINGBACK_CALLING_WINDOW_HOURS: fri has hours twice"),
    ({"calendar_country": "XX"}, "RINGBACK_CALENDAR_COUNTRY: the holidays package has no"),
    ({"calendar_extra_holidays": '["2026-01-05"]', "calendar_extra_working_days": '["2026-01-05"]'},
     "RINGBACK_CALENDAR_EXTRA_HOLIDAYS, RINGBACK_CALENDAR_EXTRA_WORKING_DAYS: dates both"),
    ({"default_locale": "de"}, "RINGBACK_DEFAULT_LOCALE: the survey has no texts for 'de': use"),
    ({"survey_texts": '{"ru": {"survey.hello": "Привет"}}'},
     "RINGBACK_SURVEY_TEXTS: flow 'survey': override for unknown prompts ['survey.hello']"),
    ({"survey_texts": '{"de": {"survey.thanks": "Danke"}}'},
     "RINGBACK_SURVEY_TEXTS: flow 'survey': override for unknown locale 'de'"),
    ({"survey_texts": '{"en": {"survey.thanks": "Thanks, {name}"}}'},
     "no value for placeholders ['name']"),
])
def test_domain_settings_are_judged_by_their_parsers(
    environment: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    [problem] = problems_named(environment, **variables)
    assert expected in problem


def test_good_settings_have_no_problems(environment: pytest.MonkeyPatch) -> None:
    assert problems_named(
        environment, calendar_hours="mon-fri 10:00-19:00; sat 11:00-15:00", default_locale="EN",
        survey_texts='{"ru": {"survey.question": "Оцените разговор, {company}."}}',
    ) == []


def test_every_problem_is_named_at_once(environment: pytest.MonkeyPatch) -> None:
    problems = problems_named(
        environment, environment="production", crm_webhook_secret="hunter2",
        default_timezone="Europe/Moskow", rtp_port_min="many", rtp_port_max="15000",
        calendar_hours="mon-fry 10:00-19:00", default_locale="de",
    )
    named = [problem.split(":")[0] for problem in problems]
    assert named == [
        "RINGBACK_CRM_WEBHOOK_SECRET", "RINGBACK_CRM_OUTBOUND_SECRET",
        "RINGBACK_DEFAULT_TIMEZONE", "RINGBACK_RTP_PORT_MIN",
        "RINGBACK_CALENDAR_HOURS", "RINGBACK_DEFAULT_LOCALE",
    ]
    with pytest.raises(InvalidSettings) as caught:
        load_settings()
    assert caught.value.problems == problems
    assert "hunter2" not in str(caught.value)


def test_rows_show_every_setting_with_secrets_masked_and_sources(
    environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"RINGBACK_CRM_OUTBOUND_SECRET={secret_of(32)}\n"
                                   "RINGBACK_HTTP_PORT=9000\n")
    environment.setenv("RINGBACK_HTTP_PORT", "9100")
    environment.setenv("RINGBACK_SIP_PASSWORD", "trunk-pass")
    environment.setenv("RINGBACK_DATABASE_URL", "postgresql+psycopg://rb:db-pass@db/rb")
    environment.setenv("RINGBACK_CRM_URL", "https://crm.example/hook?token=crm-pass")
    shown = {row.name: (row.value, row.source) for row in rows(check_settings())}
    assert len(shown) == len(Settings.model_fields)
    assert shown["RINGBACK_HTTP_PORT"] == ("9100", "environment")
    assert shown["RINGBACK_CRM_OUTBOUND_SECRET"] == ("***", ".env")
    assert shown["RINGBACK_CRM_WEBHOOK_SECRET"] == ("***", "default")
    assert shown["RINGBACK_SIP_PASSWORD"] == ("***", "environment")
    assert shown["RINGBACK_DATABASE_URL"] == ("postgresql+psycopg://rb:***@db/rb", "environment")
    assert shown["RINGBACK_CRM_URL"] == ("https://crm.example/hook?***", "environment")
    assert shown["RINGBACK_INSTANCE_NAME"] == ("(unset)", "default")
    everything = repr(shown)
    for secret in ("trunk-pass", "db-pass", "crm-pass", secret_of(32), DEV_WEBHOOK_SECRET):
        assert secret not in everything


def test_refused_values_are_shown_as_configured(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("RINGBACK_DEFAULT_TIMEZONE", "Europe/Moskow")
    environment.setenv("RINGBACK_ENVIRONMENT", "production")
    environment.setenv("RINGBACK_CRM_WEBHOOK_SECRET", "whsec_YQ==")
    shown = {row.name: row.value for row in rows(check_settings())}
    assert shown["RINGBACK_DEFAULT_TIMEZONE"] == "Europe/Moskow  (refused)"
    assert shown["RINGBACK_CRM_WEBHOOK_SECRET"] == "***  (refused)"
    assert shown["RINGBACK_ENVIRONMENT"] == "production"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://u:p%40ss@db:5432/rb", "postgresql+psycopg://u:***@db:5432/rb"),
    ("sqlite:///data/ringback.db", "sqlite:///data/ringback.db"),
    ("https://user@crm.example/x?a=1#frag", "https://user@crm.example/x?***"),
    ("http://[::1", "***"),
])
def test_urls_are_shown_without_password_or_query(url: str, shown: str) -> None:
    assert mask_url(url) == shown
