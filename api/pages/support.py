"""The support page: the callback-task queue by deadline, and claim / log a call / note /
resolve / release / cancel (an admin also reassigns) in one or two clicks, each a CSRF-checked
form over the same task-life service as the API (campaigns/task_life.py). A change another
agent got to first (a task already claimed) shows the page again with a clear message and
status 409.

The queue shows each deadline in the business's zone and counts down to it (static JS, no
inline script: the pages' CSP); the page polls `/support/version` and reloads when a task
changed, unless the agent is typing.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.pages.render import render
from api.pages.security import Form, csrf_checked, require_page_role
from api.pages.texts import texts
from api.people import People, Person, SignedIn, user_actor
from api.state import app_clock, app_sessions
from api.tokens import Role
from campaigns import task_life
from campaigns.models import TaskOutcome
from campaigns.support_queue import View, queue, version
from campaigns.task_errors import TaskConflict, TaskError
from campaigns.task_life import AttemptResult
from infra.db import transaction

router = APIRouter(include_in_schema=False)

Agent = Annotated[SignedIn, Depends(require_page_role(Role.SUPPORT))]
CheckedForm = Annotated[Form, Depends(csrf_checked)]
MAX_NOTE = 2000
Choice = TypeVar("Choice", bound=StrEnum)


def _actor(viewer: SignedIn) -> task_life.Actor:
    return task_life.Actor(user_actor(viewer.person.username),
                           admin=viewer.person.role == Role.ADMIN)


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.calendar_timezone)


def _view(raw: str | None) -> View:
    try:
        return View(raw or View.OPEN)
    except ValueError:
        return View.OPEN


def _result_labels(words: Mapping[str, str]) -> dict[str, str]:
    """Each call result's label (a task outcome's own, or the attempt's), the ones where
    nobody was talked to first: they are what a logged call mostly says."""
    ordered = sorted(AttemptResult, key=lambda result: result.value in set(TaskOutcome))
    return {result.value: words.get(f"outcome_{result.value}") or words[f"attempt_{result.value}"]
            for result in ordered}


def _colleagues(request: Request, viewer: SignedIn) -> list[Person]:
    """Whom an admin may give a task to: active support agents and admins (none for others)."""
    if viewer.person.role != Role.ADMIN:
        return []
    people: People = request.app.state.people
    return [person for person in people.list()
            if not person.disabled and person.role in (Role.SUPPORT, Role.ADMIN)]


def _page(request: Request, viewer: SignedIn, view: View, *, status: int = 200,
          notice: str = "") -> Response:
    now = app_clock(request)()
    zone = _zone(request)
    with transaction(app_sessions(request)) as session:
        items = queue(session, view, user_actor(viewer.person.username), now, zone)
        current = version(session)
    settings = request.app.state.settings
    return render(
        "support.html", viewer.person.locale, status, viewer=viewer, csrf=viewer.csrf_token,
        here=f"/support?view={view.value}", items=items, view=view, views=list(View),
        now=now, zone=zone, version=current, notice=notice, me=user_actor(
            viewer.person.username), outcomes=list(TaskOutcome), local=_local,
        calling_hours=settings.calling_window_hours,
        results=_result_labels(texts(viewer.person.locale)),
        colleagues=_colleagues(request, viewer), user_actor=user_actor,
    )


def _local(at: datetime | None, zone_name: str | None) -> str:
    """`at` as a wall-clock time in `zone_name` (empty when either is unknown)."""
    if at is None or not zone_name:
        return ""
    try:
        return at.astimezone(ZoneInfo(zone_name)).strftime("%a %d %b %H:%M")
    except (KeyError, ValueError):
        return ""


@router.get("/support", response_class=HTMLResponse)
def support(request: Request, viewer: Agent, view: str | None = None) -> Response:
    return _page(request, viewer, _view(view))


@router.get("/support/version")
def support_version(request: Request, _viewer: Agent) -> Response:
    with transaction(app_sessions(request)) as session:
        return JSONResponse({"version": version(session)},
                            headers={"Cache-Control": "no-store"})


def _act(request: Request, viewer: SignedIn, form: Form,
         change: Callable[[Session, task_life.Actor, datetime], Any]) -> Response:
    """Apply one change; back to the queue, or the queue again with why it did not happen."""
    view = _view(form.get("view"))
    words = texts(viewer.person.locale)
    try:
        with transaction(app_sessions(request)) as session:
            change(session, _actor(viewer), app_clock(request)())
    except TaskConflict as exc:
        holder = (exc.holder or "").removeprefix("user:")
        return _page(request, viewer, view, status=409,
                     notice=words["task_taken"].format(holder=holder))
    except TaskError as exc:
        return _page(request, viewer, view, status=exc.status,
                     notice=words["task_refused"].format(reason=exc.message))
    return RedirectResponse(f"/support?view={view.value}", status_code=303)


@router.post("/support/tasks/{task_id}/claim")
def claim(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    return _act(request, viewer, form,
                lambda session, actor, now: task_life.claim(session, task_id, actor, now))


@router.post("/support/tasks/{task_id}/release")
def release(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    return _act(request, viewer, form,
                lambda session, actor, now: task_life.release(session, task_id, actor, now))


@router.post("/support/tasks/{task_id}/note")
def note(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    text = _written(form, "text")
    if not text:
        return RedirectResponse(f"/support?view={_view(form.get('view')).value}",
                                status_code=303)
    return _act(request, viewer, form, lambda session, actor, now: task_life.add_note(
        session, task_id, text, actor, now))


def _written(form: Form, field: str) -> str:
    """What a person wrote in `field`, trimmed, at most MAX_NOTE characters."""
    return form.get(field, "").strip()[:MAX_NOTE]


def _incomplete(request: Request, viewer: SignedIn, form: Form, notice: str) -> Response:
    """The queue again, 422, saying what the form lacked; nothing changed."""
    return _page(request, viewer, _view(form.get("view")), status=422,
                 notice=texts(viewer.person.locale)[notice])


def _chosen(form: Form, field: str, choices: type[Choice]) -> Choice | None:
    """The option picked in `field`, None when it is not one of `choices`."""
    try:
        return choices(form.get(field, ""))
    except ValueError:
        return None


def _with_choice(
    request: Request, viewer: SignedIn, form: Form, task_id: str, field: str,
    choices: type[Choice], missing: str,
    change: Callable[[Session, str, Choice, str | None, task_life.Actor, datetime], object],
) -> Response:
    """A change that takes an option picked in `field` and the optional note: 422 (`missing`)
    without a valid option."""
    chosen = _chosen(form, field, choices)
    if chosen is None:
        return _incomplete(request, viewer, form, missing)
    note_text = _written(form, "note") or None
    return _act(request, viewer, form, lambda session, actor, now: change(
        session, task_id, chosen, note_text, actor, now))


@router.post("/support/tasks/{task_id}/attempt")
def attempt(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    return _with_choice(request, viewer, form, task_id, "result", AttemptResult,
                        "choose_result", task_life.record_attempt)


@router.post("/support/tasks/{task_id}/cancel")
def cancel(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    reason = _written(form, "reason")
    if not reason:
        return _incomplete(request, viewer, form, "cancel_needs_reason")
    return _act(request, viewer, form, lambda session, actor, now: task_life.cancel(
        session, task_id, reason, actor, now))


@router.post("/support/tasks/{task_id}/reassign")
def reassign(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    chosen = form.get("to", "")
    if viewer.person.role == Role.ADMIN and chosen not in {
            person.username for person in _colleagues(request, viewer)}:
        return _incomplete(request, viewer, form, "choose_colleague")
    return _act(request, viewer, form, lambda session, actor, now: task_life.reassign(
        session, task_id, user_actor(chosen), actor, now))


@router.post("/support/tasks/{task_id}/resolve")
def resolve(request: Request, task_id: str, viewer: Agent, form: CheckedForm) -> Response:
    return _with_choice(request, viewer, form, task_id, "outcome", TaskOutcome,
                        "choose_outcome", task_life.resolve)
