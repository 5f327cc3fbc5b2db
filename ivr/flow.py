"""Call flows as frozen data.

A flow is a set of steps, each named by an id, entered at `start`:

- `Message` speaks one prompt, then goes to `next` (or hangs up when `next` is None). It cannot be
  cut short by a key, and keys pressed while it plays are ignored.
- `Menu` speaks a question and waits for one key. A key among `choices` records the choice's
  outcome (if any) and goes to its `next`. A wrong key or `no_input_timeout_s` of silence after
  the question asks again (after the optional `invalid_prompt` / `no_input_prompt`), at most
  `max_repeats` times; then the flow goes to `exhausted`. Only keys pressed once its question
  has started count, and they cut its prompts short (barge-in).
- `Transfer` puts the caller through to the number held by the call's value `target` (an
  account manager's phone, say). Success records `transferred` and ends our part of the call;
  failure (the far end refused, or nobody took the call) goes to `failed`.

Prompts are named by stable ids ("survey.question"); their texts are templates per locale, with
`{name}` placeholders filled when a call's texts are resolved (`Flow.texts`). Every text a flow
may speak is known before the call, so speech can be rendered ahead.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ivr.errors import FlowError
from ivr.results import FlowResult

DTMF_KEYS = frozenset("0123456789*#")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

Templates = Mapping[str, Mapping[str, str]]  # locale -> prompt id -> template


@dataclass(frozen=True)
class Choice:
    """What a key does: record `outcome` (with `value`) when given, then go to `next`."""

    next: str | None
    outcome: FlowResult | None = None
    value: int | None = None

    def __post_init__(self) -> None:
        if self.value is not None and self.outcome is None:
            raise FlowError(f"choice value {self.value} without an outcome")


@dataclass(frozen=True)
class Message:
    id: str
    prompt: str
    next: str | None

    @property
    def prompts(self) -> tuple[str, ...]:
        return (self.prompt,)

    @property
    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@dataclass(frozen=True)
class Menu:
    id: str
    prompt: str
    choices: Mapping[str, Choice]
    no_input_timeout_s: float
    max_repeats: int
    exhausted: str | None
    invalid_prompt: str | None = None
    no_input_prompt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", MappingProxyType(dict(self.choices)))
        if not self.choices:
            raise FlowError(f"menu {self.id!r} has no choices")
        bad = sorted(key for key in self.choices if key not in DTMF_KEYS)
        if bad:
            raise FlowError(f"menu {self.id!r}: not DTMF keys: {bad}")
        if not self.no_input_timeout_s > 0:
            raise FlowError(f"menu {self.id!r}: no-input timeout must be positive")
        if self.max_repeats < 0:
            raise FlowError(f"menu {self.id!r}: max_repeats must not be negative")

    @property
    def prompts(self) -> tuple[str, ...]:
        optional = (self.invalid_prompt, self.no_input_prompt)
        return (self.prompt, *(prompt for prompt in optional if prompt is not None))

    @property
    def targets(self) -> tuple[str | None, ...]:
        return (self.exhausted, *(choice.next for choice in self.choices.values()))


@dataclass(frozen=True)
class Transfer:
    id: str
    target: str  # the name of the call's value holding the number to put the caller through to
    failed: str | None  # where to go when the transfer did not happen

    @property
    def prompts(self) -> tuple[str, ...]:
        return ()

    @property
    def targets(self) -> tuple[str | None, ...]:
        return (self.failed,)


Step = Message | Menu | Transfer


@dataclass(frozen=True)
class Flow:
    """Steps, the step to start with, and every prompt's text template for every locale.

    Locales are lower-case language tags ("en", "ru", "pt-br"); each must give a text for every
    prompt the steps name, and no other.
    """

    name: str
    start: str
    steps: tuple[Step, ...]
    templates: Templates
    _index: Mapping[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Step] = {}
        for step in self.steps:
            if step.id in index:
                raise FlowError(f"flow {self.name!r}: two steps named {step.id!r}")
            index[step.id] = step
        object.__setattr__(self, "_index", MappingProxyType(index))
        frozen = {locale: MappingProxyType(dict(t)) for locale, t in self.templates.items()}
        object.__setattr__(self, "templates", MappingProxyType(frozen))
        self._check()

    def _check(self) -> None:
        if self.start not in self._index:
            raise FlowError(f"flow {self.name!r}: no start step {self.start!r}")
        for step in self.steps:
            unknown = [t for t in step.targets if t is not None and t not in self._index]
            if unknown:
                raise FlowError(f"flow {self.name!r}: step {step.id!r} goes to unknown {unknown}")
        if not self.templates:
            raise FlowError(f"flow {self.name!r} has no texts")
        for locale, templates in self.templates.items():
            if _normalise(locale) != locale:
                raise FlowError(f"flow {self.name!r}: locale {locale!r} is not a lower-case tag")
            missing = sorted(self.prompt_ids - templates.keys())
            extra = sorted(templates.keys() - self.prompt_ids)
            if missing or extra:
                raise FlowError(
                    f"flow {self.name!r}, locale {locale!r}: missing texts {missing}, "
                    f"texts for unknown prompts {extra}"
                )

    @property
    def prompt_ids(self) -> frozenset[str]:
        """Every prompt the flow may speak."""
        return frozenset(prompt for step in self.steps for prompt in step.prompts)

    @property
    def value_names(self) -> frozenset[str]:
        """The call values the flow's steps need (transfer targets); texts add placeholders."""
        return frozenset(step.target for step in self.steps if isinstance(step, Transfer))

    @property
    def locales(self) -> frozenset[str]:
        return frozenset(self.templates)

    def own_overrides(self, overrides: Templates) -> Templates:
        """The part of `overrides` (for any flows) that is about this flow's prompts."""
        own = {locale: {prompt: text for prompt, text in texts.items()
                        if prompt in self.prompt_ids}
               for locale, texts in overrides.items()}
        return {locale: texts for locale, texts in own.items() if texts}

    def step(self, step_id: str) -> Step:
        return self._index[step_id]

    def resolve_locale(self, requested: str | None, default: str) -> str:
        """The flow's locale for a requested one: the exact tag ("pt_BR" matches "pt-br"), else its
        language ("ru-RU" -> "ru"), else `default` (which the flow must have)."""
        if requested:
            tag = _normalise(requested)
            for candidate in (tag, tag.split("-")[0]):
                if candidate in self.templates:
                    return candidate
        fallback = _normalise(default)
        if fallback not in self.templates:
            raise FlowError(f"flow {self.name!r} has no texts for default locale {default!r}")
        return fallback

    def texts(
        self,
        locale: str,
        *,
        overrides: Templates | None = None,
        values: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Every text the flow may speak in `locale`: its templates, replaced by `overrides`
        (locale -> prompt id -> template, from configuration) where given, with `{name}`
        placeholders filled from `values`.

        All overrides are checked, not only the ones for `locale`: an unknown locale or prompt id,
        an empty text or a placeholder `values` has no value for is a `FlowError`.
        """
        values = dict(values or {})
        blank = sorted(name for name, value in values.items() if not value.strip())
        if blank:
            raise FlowError(f"empty values for placeholders {blank}")
        if locale not in self.templates:
            raise FlowError(f"flow {self.name!r} has no texts for locale {locale!r}")
        overrides = overrides or {}
        self._check_overrides(overrides)
        for where, template in self._all_templates(overrides):
            unknown = sorted(set(placeholders(template)) - values.keys())
            if unknown:
                raise FlowError(f"{where}: no value for placeholders {unknown}")
        merged = {**self.templates[locale], **overrides.get(locale, {})}
        return {prompt: fill(template, values) for prompt, template in merged.items()}

    def _check_overrides(self, overrides: Templates) -> None:
        for locale, templates in overrides.items():
            if locale not in self.templates:
                raise FlowError(f"flow {self.name!r}: override for unknown locale {locale!r}")
            unknown = sorted(templates.keys() - self.prompt_ids)
            if unknown:
                raise FlowError(f"flow {self.name!r}: override for unknown prompts {unknown}")
            empty = sorted(prompt for prompt, text in templates.items() if not text.strip())
            if empty:
                raise FlowError(f"flow {self.name!r}, locale {locale!r}: empty texts {empty}")

    def _all_templates(self, overrides: Templates) -> list[tuple[str, str]]:
        return [
            (f"flow {self.name!r}, locale {locale!r}, prompt {prompt!r}", template)
            for source in (self.templates, overrides)
            for locale, templates in source.items()
            for prompt, template in templates.items()
        ]


def _normalise(locale: str) -> str:
    return locale.strip().lower().replace("_", "-")


def placeholders(template: str) -> list[str]:
    """The `{name}` placeholders in `template`, in order."""
    return _PLACEHOLDER.findall(template)


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill `{name}` placeholders in one pass: a value's own braces are never expanded."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
