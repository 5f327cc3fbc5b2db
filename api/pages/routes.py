"""The sign-in page, sign-out and the landing page (the support page: api/pages/support.py).

The routes are thin: `api.pages.security` says who is looking and checks forms, `api.people`
does the work.
"""

import math
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.callback_report import Calendar as ReportCalendar
from api.callback_report import ReportTime
from api.pages.render import render
from api.pages.reports import callback_report_page
from api.pages.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Form,
    PeopleService,
    clear_cookie,
    csrf_checked,
    current_user,
    local_path,
    new_csrf_token,
    optional_user,
    presession_csrf_checked,
    require_page_role,
    set_cookie,
)
from api.pages.texts import texts, visitor_locale
from api.people import LOCALES, SignedIn, user_actor
from api.tokens import Role
from infra.db import utcnow

router = APIRouter(include_in_schema=False)

Viewer = Annotated[SignedIn, Depends(current_user)]


def _signin_page(request: Request, next_path: str, *, status: int = 200, error: str = "",
                 username: str = "") -> Response:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    locale = visitor_locale(request)
    other = texts(locale)["other_language_code"]
    switch = "/signin?" + urlencode({"lang": other, "next": next_path})
    response = render("signin.html", locale, status, csrf=token, next=next_path, error=error,
                      username=username, switch_url=switch)
    if request.cookies.get(CSRF_COOKIE) != token:
        set_cookie(response, request, CSRF_COOKIE, token)
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_form(
    request: Request, viewer: Annotated[SignedIn | None, Depends(optional_user)],
    next: str = "/",
) -> Response:
    if viewer is not None:
        return RedirectResponse(local_path(next), status_code=303)
    return _signin_page(request, local_path(next))


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request, people: PeopleService,
    form: Annotated[Form, Depends(presession_csrf_checked)],
) -> Response:
    next_path = local_path(form.get("next"))
    username = form.get("username", "")[:100]
    address = request.client.host if request.client else "unknown"
    result = people.sign_in(username, form.get("password", ""), address)
    if result.session_token is None:
        words = texts(visitor_locale(request))
        if result.locked_until is not None:
            minutes = max(1, math.ceil((result.locked_until - utcnow()).total_seconds() / 60))
            return _signin_page(request, next_path, status=429, username=username,
                                error=words["locked"].format(minutes=minutes))
        return _signin_page(request, next_path, status=401, username=username,
                            error=words["wrong_credentials"])
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, result.session_token)
    return response


@router.post("/signout")
def signout(
    request: Request, people: PeopleService, _form: Annotated[Form, Depends(csrf_checked)],
) -> Response:
    people.sign_out(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/signin", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


@router.post("/locale")
def choose_locale(
    viewer: Viewer, people: PeopleService, form: Annotated[Form, Depends(csrf_checked)],
) -> Response:
    """The signed-in person's choice of language for their pages; back to where they were."""
    locale = form.get("locale", "")
    if locale in LOCALES:
        people.set_locale(user_actor(viewer.person.username), viewer.person.username, locale)
    return RedirectResponse(local_path(form.get("next")), status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, viewer: Viewer) -> Response:
    return _page(request, "home.html", viewer)


@router.get("/reports/callbacks", response_class=HTMLResponse)
def callback_report(
    request: Request,
    viewer: Annotated[SignedIn, Depends(require_page_role(Role.SUPPORT))],
    calendar: ReportCalendar, now: ReportTime,
    start: Annotated[str, Query(alias="from", max_length=10)] = "",
    end: Annotated[str, Query(alias="to", max_length=10)] = "",
) -> Response:
    """The callback compliance report (api/pages/reports.py)."""
    return callback_report_page(request, viewer, calendar, now, start, end)


def _page(request: Request, template: str, viewer: SignedIn) -> Response:
    """A signed-in page, in the viewer's language."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(template, viewer.person.locale, viewer=viewer, csrf=viewer.csrf_token,
                  here=here)
