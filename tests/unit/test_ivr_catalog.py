"""The catalog of call flows: what campaigns name (the survey, both warnings) and what
configuration gives every call (company, its spoken form, overrides, no-input timeouts)."""

from typing import Any

import pytest

from ivr.actions import Play, StartTimer
from ivr.catalog import CatalogEntry, FlowCatalog, FlowOptions, UnknownFlow, default_entries
from ivr.errors import FlowError
from ivr.events import PlaybackFinished
from ivr.survey import SURVEY_TEMPLATES
from ivr.survey import THANKS as SURVEY_THANKS
from ivr.warning import BALANCE, CONNECTING, GOODBYE, HELLO, WARNING_PROMPTS, WarningReason

SURVEY_PROMPTS = frozenset(SURVEY_TEMPLATES["en"])
BALANCE_VALUES = {"balance": "350.50", "currency": "RUB"}
CAMPAIGN_VALUES = {"campaign": "Spring Sale", "stop_date": "2026-11-25"}


def catalog(entries: list[CatalogEntry] | None = None, **options: Any) -> FlowCatalog:
    return FlowCatalog(FlowOptions(company="Acme", default_locale="ru", **options), entries)


def test_the_catalog_knows_the_survey_and_both_warnings() -> None:
    flows = catalog()
    assert flows.names == {"survey", "balance_warning", "campaign_warning"}
    survey = flows.session("survey", "en", {})
    assert survey.flow.name == "survey" and survey.locale == "en"
    balance = flows.session("balance_warning", "en", BALANCE_VALUES)
    assert balance.flow.name == "balance_warning"
    assert balance.texts[BALANCE] == (
        "Your account balance is low. It is three hundred fifty rubles and fifty kopecks.")
    campaign = flows.session("campaign_warning", None, CAMPAIGN_VALUES)
    assert campaign.flow.name == "campaign_warning" and campaign.locale == "ru"


def test_entries_name_their_locales_and_every_prompt_a_call_may_speak() -> None:
    entries = {entry.name: entry for entry in default_entries()}
    assert entries["survey"].prompt_ids == SURVEY_PROMPTS
    for reason in WarningReason:
        entry = entries[reason.flow_name]
        assert entry.prompt_ids == WARNING_PROMPTS
        assert entry.locales == {"en", "ru"}
    assert entries["survey"].locales == {"en", "ru"}


def test_an_unknown_flow_names_the_known_ones() -> None:
    flows = catalog()
    with pytest.raises(UnknownFlow) as caught:
        flows.session("balance_warnings", "en", BALANCE_VALUES)
    assert str(caught.value) == ("no flow 'balance_warnings' in the catalog: "
                                 "['balance_warning', 'campaign_warning', 'survey']")
    assert isinstance(caught.value, FlowError)  # the prerenderer refuses the job, no crash
    with pytest.raises(UnknownFlow, match="\\['survey'\\]"):
        catalog(default_entries()[:1]).entry("balance_warning")


def test_prompt_ids_are_the_union_of_the_flows() -> None:
    assert catalog().prompt_ids == SURVEY_PROMPTS | WARNING_PROMPTS
    assert catalog(default_entries()[1:]).prompt_ids == WARNING_PROMPTS
    assert catalog([]).prompt_ids == frozenset()


def first_timer(flows: FlowCatalog, flow: str, values: dict[str, str]) -> StartTimer:
    """The no-input timer a call of `flow` starts once its question was heard."""
    session = flows.session(flow, "en", values)
    actions = session.start(0.0)
    at = 0.0
    while True:
        [action] = actions
        if isinstance(action, StartTimer):
            return action
        assert isinstance(action, Play)
        at += 1
        actions = session.handle(PlaybackFinished(action.prompt_id, at))


def test_each_flow_waits_its_own_no_input_timeout() -> None:
    flows = catalog(default_entries(survey_no_input_s=3.0, warning_no_input_s=8.0))
    assert first_timer(flows, "survey", {}).seconds == 3.0
    assert first_timer(flows, "balance_warning", BALANCE_VALUES).seconds == 8.0
    assert first_timer(flows, "campaign_warning", CAMPAIGN_VALUES).seconds == 8.0
    defaults = catalog()
    assert first_timer(defaults, "survey", {}).seconds == 6.0
    assert first_timer(defaults, "balance_warning", BALANCE_VALUES).seconds == 6.0


def test_options_reach_every_flow() -> None:
    flows = catalog(company_spoken={"ru": "Акме"}, overrides={
        "ru": {SURVEY_THANKS: "Спасибо!", HELLO: "Добрый день! Это {company}."},
        "en": {GOODBYE: "Bye!"},
    })
    survey = flows.session("survey", "ru", {})
    assert survey.texts[SURVEY_THANKS] == "Спасибо!"
    assert "Акме" in survey.texts["survey.greeting"]
    balance = flows.session("balance_warning", "ru", BALANCE_VALUES)
    assert balance.texts[HELLO] == "Добрый день! Это Акме."
    assert flows.session("campaign_warning", "en", CAMPAIGN_VALUES).texts[GOODBYE] == "Bye!"


def test_overrides_of_one_flow_do_not_trouble_another() -> None:
    """The survey's and the warnings' overrides come in one map; each flow takes its own, and a
    warning prompt that a call does not speak (no manager: no transfer) is skipped."""
    flows = catalog(overrides={"en": {SURVEY_THANKS: "Thanks, {company}!",
                                      CONNECTING: "Hold on."}})
    assert flows.session("balance_warning", "en", BALANCE_VALUES).texts.keys() <= WARNING_PROMPTS
    assert flows.session("survey", "en", {}).texts[SURVEY_THANKS] == "Thanks, Acme!"


@pytest.mark.parametrize(("flow", "values", "message"), [
    ("balance_warning", {"balance": "abc", "currency": "RUB"}, "not an amount"),
    ("balance_warning", {"balance": "1", "currency": "rubles"}, "not a currency code"),
    ("campaign_warning", {"campaign": "Spring", "stop_date": "tomorrow"}, "not a date"),
])
def test_values_that_do_not_fit_the_flow_are_flow_errors(
    flow: str, values: dict[str, str], message: str
) -> None:
    with pytest.raises(FlowError, match=message):
        catalog().session(flow, "en", values)
