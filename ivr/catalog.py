"""The catalog of call flows: a flow's name -> how to build a call's session from plain values.

Campaigns name a flow and hand over the call's own values (a job's amount, campaign, stop
date ...); the catalog holds what configuration says about every call (the company, how its
name is spoken, text overrides, the no-input timeout). Nothing here reads settings.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ivr.errors import FlowError
from ivr.flow import Templates, fill, placeholders
from ivr.session import Session
from ivr.survey import DEFAULT_NO_INPUT_TIMEOUT_S, survey_flow, survey_session
from ivr.warning import WARNING_PROMPTS, WARNING_TEMPLATES, WarningReason, warning_session


@dataclass(frozen=True)
class FlowOptions:
    """What every call of every flow shares, from configuration."""

    company: str
    default_locale: str
    company_spoken: Mapping[str, str] = field(default_factory=dict)
    overrides: Templates = field(default_factory=dict)  # locale -> prompt id -> text, any flow


Builder = Callable[[str | None, Mapping[str, str], FlowOptions], Session]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    locales: frozenset[str]
    prompt_ids: frozenset[str]  # every prompt a call of this flow may speak
    build: Builder  # (requested locale, the call's values, options) -> session
    templates: Templates  # locale -> prompt id -> text with {placeholders}


# Placeholders configuration fills the same way in every call: a recording may say them.
CONFIGURED_VALUES = frozenset({"company"})


@dataclass(frozen=True)
class PromptText:
    """One prompt in one locale, as configuration leaves it (overrides applied)."""

    prompt_id: str
    locale: str
    template: str
    flows: tuple[str, ...]

    @property
    def call_values(self) -> tuple[str, ...]:
        """The call's own values it speaks (an amount, a date): a prompt with any stays
        synthetic, since no recording can say every amount."""
        return tuple(sorted(set(placeholders(self.template)) - CONFIGURED_VALUES))


class UnknownFlow(FlowError):
    pass


def _survey(no_input_timeout_s: float) -> Builder:
    def build(locale: str | None, _values: Mapping[str, str], options: FlowOptions) -> Session:
        return survey_session(
            locale, company=options.company, default_locale=options.default_locale,
            overrides=survey_flow().own_overrides(options.overrides),
            company_spoken=options.company_spoken, no_input_timeout_s=no_input_timeout_s,
        )

    return build


def _warning(reason: WarningReason, no_input_timeout_s: float) -> Builder:
    def build(locale: str | None, values: Mapping[str, str], options: FlowOptions) -> Session:
        return warning_session(
            reason, locale, values, company=options.company,
            default_locale=options.default_locale,
            overrides=_only(options.overrides, WARNING_PROMPTS),
            company_spoken=options.company_spoken, no_input_timeout_s=no_input_timeout_s,
        )

    return build


def _only(overrides: Templates, prompts: frozenset[str]) -> Templates:
    """The overrides (for any flow) of `prompts`."""
    return {locale: {prompt: text for prompt, text in texts.items() if prompt in prompts}
            for locale, texts in overrides.items()}


def default_entries(
    *, survey_no_input_s: float = DEFAULT_NO_INPUT_TIMEOUT_S,
    warning_no_input_s: float = DEFAULT_NO_INPUT_TIMEOUT_S,
) -> list[CatalogEntry]:
    """The survey and the warnings, each waiting its no-input timeout for a key."""
    survey = survey_flow()
    entries = [CatalogEntry(survey.name, survey.locales, survey.prompt_ids,
                            _survey(survey_no_input_s), survey.templates)]
    for reason in WarningReason:
        entries.append(CatalogEntry(reason.flow_name, frozenset(WARNING_TEMPLATES),
                                    WARNING_PROMPTS, _warning(reason, warning_no_input_s),
                                    WARNING_TEMPLATES))
    return entries


class FlowCatalog:
    def __init__(self, options: FlowOptions, entries: Iterable[CatalogEntry] | None = None
                 ) -> None:
        self.options = options
        self._entries = MappingProxyType(
            {entry.name: entry for entry in (default_entries() if entries is None else entries)}
        )

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._entries)

    @property
    def prompt_ids(self) -> frozenset[str]:
        """Every prompt any flow may speak (what overrides may name)."""
        return frozenset().union(*(entry.prompt_ids for entry in self._entries.values()))

    def prompt_texts(self) -> list[PromptText]:
        """Every prompt of every flow in every locale, sorted by prompt id and locale; the
        configured overrides replace the built-in texts."""
        found: dict[tuple[str, str], tuple[str, list[str]]] = {}
        for entry in self._entries.values():
            for locale, texts in entry.templates.items():
                own = self.options.overrides.get(locale, {})
                for prompt_id, template in texts.items():
                    flows = found.setdefault(
                        (prompt_id, locale), (own.get(prompt_id, template), []))[1]
                    flows.append(entry.name)
        return [PromptText(prompt_id, locale, text, tuple(sorted(flows)))
                for (prompt_id, locale), (text, flows) in sorted(found.items())]

    def words(self, text: PromptText) -> str:
        """What a recordable prompt says in every call: its configured values filled in (the
        company's name as it is spoken in that locale)."""
        options = self.options
        return fill(text.template, {
            "company": options.company_spoken.get(text.locale, options.company)})

    def entry(self, flow: str) -> CatalogEntry:
        try:
            return self._entries[flow]
        except KeyError:
            raise UnknownFlow(f"no flow {flow!r} in the catalog: {sorted(self._entries)}") from None

    def session(self, flow: str, locale: str | None, values: Mapping[str, str]) -> Session:
        """A session for one call of `flow`; `session.texts` is what to render before dialing.
        Raises `FlowError` when the values or the configuration do not fit the flow."""
        return self.entry(flow).build(locale, values, self.options)
