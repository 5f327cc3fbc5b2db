"""Pages from Jinja2 templates (api/templates, autoescaped), with the headers every page gets:
not cached, not framed, scripts and styles only from ringback itself."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from api.pages.texts import texts

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                           undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, locale: str, status: int = 200, **context: Any) -> HTMLResponse:
    """`template` with `t` (the texts of `locale`) and `context`."""
    values: Mapping[str, Any] = {"t": texts(locale), "viewer": None, "csrf": "", **context}
    html = _environment.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
