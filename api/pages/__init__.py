"""ringback's web pages for people: server-rendered Jinja2 templates over the same services as
the API, a stylesheet served by ringback itself (no CDN), sign-in with a session cookie and CSRF
checks on every form. `install_pages(app)` adds them to the app."""

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from api.pages import marketing, support
from api.pages.render import STATIC, render
from api.pages.routes import router
from api.pages.security import SESSION_COOKIE, PageError, SignInRequired, clear_cookie, signin_url
from api.pages.texts import visitor_locale


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    viewer = exc.viewer
    locale = viewer.person.locale if viewer is not None else visitor_locale(request)
    return render("error.html", locale, exc.status, viewer=viewer,
                  csrf=viewer.csrf_token if viewer is not None else "",
                  title_key=exc.title, message_key=exc.message)


async def _signin_required(request: Request, exc: Exception) -> Response:
    """To the sign-in page; a stale session cookie is dropped on the way."""
    assert isinstance(exc, SignInRequired)
    response = RedirectResponse(signin_url(exc.next_path), status_code=303)
    if SESSION_COOKIE in request.cookies:
        clear_cookie(response, request, SESSION_COOKIE)
    return response


def install_pages(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(support.router)
    app.include_router(marketing.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(PageError, _page_error)
    app.add_exception_handler(SignInRequired, _signin_required)
