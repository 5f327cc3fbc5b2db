"""Who is looking at a page, and whether a form may be trusted.

    @router.get("/tips", response_class=HTMLResponse)
    def tips(viewer: Annotated[SignedIn, Depends(require_page_role(Role.MARKETING))]) -> ...

    @router.post("/tips")
    def save(viewer: ..., form: Annotated[Form, Depends(csrf_checked)]) -> ...

- `current_user`: the signed-in person; signed out (no cookie, an expired session, a disabled
  user) → a redirect to `/signin?next=<this page>`.
- `require_page_role(*roles)`: the same, and a 403 page for another role (admins pass).
- `csrf_checked`: every POST form. The form's hidden `csrf` field must equal the session's
  CSRF token (signed in) or the pre-session `rb_csrf` cookie (the sign-in form: double
  submit); otherwise a 403 page, and nothing is done. Returns the parsed form.

- `upload_csrf_checked`: a POST form with a file (`multipart/form-data`), read with a bound
  (api/uploads.py: the upload limit plus a little, counted as it streams, never read whole into
  memory); the same CSRF check on its hidden `csrf` field, before anything in it is used. A
  body over the bound is not read at all: `None`, for the page to say so (nothing is done).

Other forms are `application/x-www-form-urlencoded`, at most 64 KiB, parsed here.
"""

import hmac
import secrets
from collections.abc import Callable
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from starlette.responses import Response

from api.people import People, SignedIn
from api.tokens import Role
from api.uploads import BadUpload, UploadForm, UploadTooLarge, read_upload_form

SESSION_COOKIE = "rb_session"
CSRF_COOKIE = "rb_csrf"
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024

Form = dict[str, str]


class PageError(Exception):
    """Answered with the error page: `title` and `message` are keys of the pages' texts."""

    def __init__(self, status: int, title: str, message: str,
                 viewer: SignedIn | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.viewer = viewer


class SignInRequired(Exception):
    """Answered with a redirect to the sign-in page, back to `next_path` afterwards."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def people_service(request: Request) -> People:
    people: People = request.app.state.people
    return people


PeopleService = Annotated[People, Depends(people_service)]


def optional_user(request: Request, people: PeopleService) -> SignedIn | None:
    return people.resolve(request.cookies.get(SESSION_COOKIE))


def current_user(
    request: Request, viewer: Annotated[SignedIn | None, Depends(optional_user)]
) -> SignedIn:
    if viewer is None:
        path = request.url.path
        if request.url.query and request.method == "GET":
            path += "?" + request.url.query
        raise SignInRequired(path if request.method == "GET" else "/")
    return viewer


def require_page_role(*roles: Role | str) -> Callable[..., SignedIn]:
    """A dependency: the signed-in person if their role is one of `roles` (or admin)."""
    if not roles:
        raise ValueError("require_page_role needs at least one role")
    allowed = frozenset(Role(role) for role in roles) | {Role.ADMIN}

    def dependency(viewer: Annotated[SignedIn, Depends(current_user)]) -> SignedIn:
        if viewer.person.role not in allowed:
            raise PageError(403, "forbidden_title", "forbidden_role", viewer)
        return viewer

    return dependency


async def page_form(request: Request) -> Form:
    """The urlencoded form a page posted; a 400 page for too much. Any other body counts as
    an empty form (so it has no CSRF token and is refused with 403)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PageError(400, "bad_form", "bad_form")
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(400, "bad_form", "bad_form")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "bad_form", "bad_form") from None


def _same(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def csrf_checked(
    request: Request,
    form: Annotated[Form, Depends(page_form)],
    viewer: Annotated[SignedIn | None, Depends(optional_user)],
) -> Form:
    given = form.get(CSRF_FIELD)
    expected = viewer.csrf_token if viewer is not None else request.cookies.get(CSRF_COOKIE)
    if not _same(expected, given):
        raise PageError(403, "csrf_title", "csrf_message", viewer)
    return form


async def page_upload(request: Request) -> UploadForm | None:
    """The multipart form a page posted, bounded; None when its body is over the bound (it
    was not read); a 400 page for a body that is not a multipart form."""
    try:
        return await read_upload_form(request)
    except UploadTooLarge:
        return None
    except BadUpload:
        raise PageError(400, "bad_form", "bad_form") from None


def upload_csrf_checked(
    request: Request,
    form: Annotated[UploadForm | None, Depends(page_upload)],
    viewer: Annotated[SignedIn | None, Depends(optional_user)],
) -> UploadForm | None:
    """`csrf_checked` for a form with a file: its token checked like any form's. None: the
    body was too large to read, so nothing in it may be used (the route says so)."""
    if form is None:
        return None
    expected = viewer.csrf_token if viewer is not None else request.cookies.get(CSRF_COOKIE)
    if not _same(expected, form.fields.get(CSRF_FIELD)):
        raise PageError(403, "csrf_title", "csrf_message", viewer)
    return form


def presession_csrf_checked(
    request: Request, form: Annotated[Form, Depends(page_form)]
) -> Form:
    """The sign-in form's check: the hidden field equals the `rb_csrf` cookie."""
    if not _same(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
        raise PageError(403, "csrf_title", "csrf_message")
    return form


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def is_secure(request: Request) -> bool:
    """Cookies are Secure when this request came over https, or ringback's public URL is."""
    public_url: str | None = getattr(request.app.state.settings, "public_url", None)
    return request.url.scheme == "https" or bool(public_url and public_url.startswith("https:"))


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """HttpOnly, SameSite=Lax, for the whole site; Secure over https. No Max-Age: the browser
    forgets it when it closes, and the server ends it sooner (api.people.SessionPolicy)."""
    response.set_cookie(name, value, path="/", httponly=True, samesite="lax",
                        secure=is_secure(request))


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax",
                           secure=is_secure(request))


def local_path(candidate: str | None) -> str:
    """`candidate` if it is a path on this site, else "/": never a redirect elsewhere."""
    if (not candidate or not candidate.startswith("/") or candidate.startswith(("//", "/\\"))
            or any(ch in candidate for ch in "\\\r\n\t") or not candidate.isprintable()):
        return "/"
    return candidate


def signin_url(next_path: str) -> str:
    next_path = local_path(next_path)
    return "/signin" if next_path == "/" else "/signin?" + urlencode({"next": next_path})
