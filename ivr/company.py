"""How the company's name is spoken in a call's language."""

from collections.abc import Mapping

from ivr.errors import FlowError
from ivr.flow import Flow


def company_value(
    flow: Flow, locale: str, company: str, company_spoken: Mapping[str, str] | None
) -> str:
    """`company_spoken[locale]` where given, else `company`: a Latin name in a Russian sentence
    makes the Russian voice switch to English for it, "Акме" does not. Raises `FlowError` for a
    spoken form that is empty or for a locale the flow has no texts for."""
    spoken = dict(company_spoken or {})
    unknown = sorted(spoken.keys() - flow.locales)
    if unknown:
        raise FlowError(f"spoken company name for unknown locales {unknown}: use one of "
                        f"{sorted(flow.locales)}")
    blank = sorted(tag for tag, text in spoken.items() if not text.strip())
    if blank:
        raise FlowError(f"empty spoken company name for {blank}")
    return spoken.get(locale, company)
