"""The marketing pages: a hold line's tips in play order (move up/down, enable/disable, edit,
delete, listen), a line's settings and music bed, a tip's form with its history of edits, and
the robot's prompts with their recordings — over the same services as the API
(campaigns/hold_tips.py, campaigns/prompt_recordings.py). Marketing and admins only.

Every change is a CSRF-checked POST form (no JavaScript needed); forms with a file are
`multipart/form-data`, read with a bound (api/pages/security.py `upload_csrf_checked`). What
the services refuse (a stale version, a file that is not audio) shows the page again with the
reason and a 4xx status. Previews are the sound as the caller hears it (`audio.wav`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.hold_tips import heard_wav, sound_errors, tip_sound
from api.pages.render import render
from api.pages.security import Form, csrf_checked, require_page_role, upload_csrf_checked
from api.pages.texts import texts
from api.people import SignedIn, user_actor
from api.state import Sounds, SoundServices
from api.tokens import Role
from api.uploads import UploadForm, too_large_refusal
from audio.errors import UploadRefused
from campaigns.audio_clips import ClipInfo
from campaigns.hold_errors import SoundError, StaleEdit
from campaigns.hold_tips import MAX_WEIGHT, MIN_WEIGHT, Line, Tip, TipDraft
from ivr.hold_rotation import HoldTiming, RotationMode

router = APIRouter(include_in_schema=False)

Marketer = Annotated[SignedIn, Depends(require_page_role(Role.MARKETING))]
CheckedForm = Annotated[Form, Depends(csrf_checked)]
CheckedUpload = Annotated[UploadForm | None, Depends(upload_csrf_checked)]
TipId = Annotated[int, Path(ge=1)]
LOCALES = ("ru", "en")
EXCERPT = 120


class Refused(Exception):
    """What the page says when a form was not applied, and with which status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TipForm:
    """The tip form's values as the page shows them (a tip's, or what was posted)."""

    title: str = ""
    locale: str = "ru"
    text: str = ""
    lines: list[str] = field(default_factory=list)
    weight: str = "1"
    starts_on: str = ""
    ends_on: str = ""
    daily_from: str = ""
    daily_to: str = ""
    enabled: bool = True
    clip: ClipInfo | None = None
    version: int = 0


def _actor(viewer: SignedIn) -> str:
    return user_actor(viewer.person.username)


def _words(viewer: SignedIn) -> Mapping[str, str]:
    return texts(viewer.person.locale)


def _refusal(viewer: SignedIn, exc: Exception) -> Refused:
    words = _words(viewer)
    if isinstance(exc, UploadRefused):
        return Refused(413 if exc.code == "audio-too-large" else 422,
                       words["upload_refused"].format(reason=exc.message))
    if isinstance(exc, StaleEdit):
        return Refused(409, words["edit_conflict"].format(reason=exc.message))
    if isinstance(exc, SoundError):
        return Refused(exc.status, words["refused"].format(reason=exc.message))
    raise exc


def _too_large(viewer: SignedIn) -> Refused:
    return _refusal(viewer, too_large_refusal())


def _tip_form(tip: Tip, clip: ClipInfo | None) -> TipForm:
    return TipForm(
        title=tip.title, locale=tip.locale, text=tip.text or "", lines=list(tip.lines),
        weight=str(tip.weight), starts_on=_iso(tip.starts_on), ends_on=_iso(tip.ends_on),
        daily_from=_hhmm(tip.daily_from), daily_to=_hhmm(tip.daily_to), enabled=tip.enabled,
        clip=clip, version=tip.version)


def _iso(day: date | None) -> str:
    return "" if day is None else day.isoformat()


def _hhmm(moment: time | None) -> str:
    return "" if moment is None else moment.strftime("%H:%M")


def _posted(form: UploadForm, clip: ClipInfo | None) -> TipForm:
    fields = form.fields
    return TipForm(
        title=fields.get("title", "")[:200], locale=fields.get("locale", "ru"),
        text=fields.get("text", "")[:2000], lines=form.getlist("lines"),
        weight=fields.get("weight", "1"), starts_on=fields.get("starts_on", ""),
        ends_on=fields.get("ends_on", ""), daily_from=fields.get("daily_from", ""),
        daily_to=fields.get("daily_to", ""), enabled=fields.get("enabled") == "on",
        clip=clip, version=_int(fields.get("version"), 0))


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw or "")
    except ValueError:
        return default


def _draft(viewer: SignedIn, values: TipForm, clip_id: str | None) -> TipDraft:
    words = _words(viewer)
    try:
        weight = int(values.weight)
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise ValueError(f"the weight is a whole number from {MIN_WEIGHT} to {MAX_WEIGHT}")
        return TipDraft(
            title=values.title, locale=values.locale, lines=tuple(values.lines),
            text=values.text or None, clip_id=clip_id, weight=weight,
            starts_on=date.fromisoformat(values.starts_on) if values.starts_on else None,
            ends_on=date.fromisoformat(values.ends_on) if values.ends_on else None,
            daily_from=time.fromisoformat(values.daily_from) if values.daily_from else None,
            daily_to=time.fromisoformat(values.daily_to) if values.daily_to else None,
            enabled=values.enabled)
    except ValueError as exc:
        raise Refused(422, words["bad_value"].format(reason=exc)) from None


def _has_file(form: UploadForm) -> bool:
    return bool(form.file) or bool(form.filename)


async def _uploaded_clip(sounds: SoundServices, viewer: SignedIn, form: UploadForm
                         ) -> ClipInfo | None:
    """The form's file decoded and kept (None without one); `UploadRefused` otherwise."""
    if not _has_file(form):
        return None
    clip = await sounds.decoded(form.file, form.filename)
    return await run_in_threadpool(sounds.tips.store_clip, _actor(viewer), clip, form.filename)


# -- the tips page ----------------------------------------------------------------------------

def _schedule(tip: Tip, words: Mapping[str, str]) -> str:
    parts = []
    if tip.starts_on or tip.ends_on:
        parts.append(f"{_iso(tip.starts_on) or '…'} \u2013 {_iso(tip.ends_on) or '…'}")
    if tip.daily_from and tip.daily_to:
        parts.append(f"{words['daily']} {_hhmm(tip.daily_from)}\u2013{_hhmm(tip.daily_to)}")
    return ", ".join(parts) or words["always"]


def _excerpt(tip: Tip, words: Mapping[str, str]) -> str:
    if tip.clip_id is not None:
        return f"({words['recording']})"
    text = tip.text or ""
    return text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…"


def _tips_page(request: Request, viewer: SignedIn, sounds: SoundServices, line_name: str | None,
               *, status: int = 200, notice: str = "", tip_form: TipForm | None = None,
               line_form: Mapping[str, str] | None = None) -> Response:
    tips_service = sounds.tips
    lines = tips_service.lines()
    names = [line.name for line in lines]
    current = next((line for line in lines if line.name == line_name), None)
    if current is None and lines:
        current = lines[0]
    tips = tips_service.tips(current.name) if current is not None else []
    totals = sounds.stats.totals([tip.id for tip in tips])
    gap_clip = (tips_service.clip(current.gap_clip_id)
                if current is not None and current.gap_clip_id else None)
    words = _words(viewer)
    here = f"/marketing?line={current.name}" if current is not None else "/marketing"
    return render(
        "marketing.html", viewer.person.locale, status, viewer=viewer, csrf=viewer.csrf_token,
        here=here, lines=lines, line=current, tips=tips, totals=totals, notice=notice,
        tip_form=tip_form or TipForm(lines=[current.name] if current else names[:1]),
        line_form=line_form or _line_form(current), gap_clip=gap_clip, locales=LOCALES,
        rotations=list(RotationMode), schedule=lambda tip: _schedule(tip, words),
        excerpt=lambda tip: _excerpt(tip, words), seconds=_seconds)


def _seconds(value: float) -> str:
    return f"{value:.1f}"


def _line_form(line: Line | None) -> dict[str, str]:
    if line is None:
        return {"name": "", "title": "", "rotation": "order", "first_delay_s": "5",
                "gap_s": "3"}
    return {"name": line.name, "title": line.title, "rotation": line.rotation.value,
            "first_delay_s": f"{line.timing.first_delay_s:g}",
            "gap_s": f"{line.timing.gap_s:g}"}


@router.get("/marketing", response_class=HTMLResponse)
def marketing(request: Request, viewer: Marketer, sounds: Sounds,
              line: str | None = None) -> Response:
    return _tips_page(request, viewer, sounds, line)


def _back(line: str | None) -> Response:
    return RedirectResponse("/marketing" + (f"?line={line}" if line else ""), status_code=303)


@router.post("/marketing/lines")
async def save_line(request: Request, viewer: Marketer, sounds: Sounds,
                    form: CheckedUpload) -> Response:
    if form is None:
        return await run_in_threadpool(_tips_page, request, viewer, sounds, None,
                                       status=413, notice=_too_large(viewer).message)
    fields = form.fields
    name = fields.get("name", "").strip().lower()
    values = {key: fields.get(key, "") for key in ("name", "title", "rotation",
                                                   "first_delay_s", "gap_s")}
    try:
        try:
            timing = HoldTiming(float(fields.get("first_delay_s", "5")),
                                float(fields.get("gap_s", "3")))
            rotation = RotationMode(fields.get("rotation", "order"))
        except ValueError as exc:
            raise Refused(422, _words(viewer)["bad_value"].format(reason=exc)) from None
        try:
            existing = next((line for line in await run_in_threadpool(sounds.tips.lines)
                             if line.name == name), None)
            clip = await _uploaded_clip(sounds, viewer, form)
            if clip is not None:
                gap_clip_id: str | None = clip.id
            elif fields.get("drop_music") == "on" or existing is None:
                gap_clip_id = None
            else:
                gap_clip_id = existing.gap_clip_id
            await run_in_threadpool(sounds.tips.save_line, _actor(viewer), Line(
                name, fields.get("title", ""), rotation, timing, gap_clip_id))
        except (SoundError, UploadRefused) as exc:
            raise _refusal(viewer, exc) from None
    except Refused as refused:
        return await run_in_threadpool(
            _tips_page, request, viewer, sounds, name or None, status=refused.status,
            notice=refused.message, line_form=values)
    return _back(name)


@router.post("/marketing/tips")
async def create_tip(request: Request, viewer: Marketer, sounds: Sounds,
                     form: CheckedUpload) -> Response:
    if form is None:
        return await run_in_threadpool(_tips_page, request, viewer, sounds, None,
                                       status=413, notice=_too_large(viewer).message)
    values = _posted(form, None)
    line = form.fields.get("back_line") or (values.lines[0] if values.lines else None)
    try:
        draft = _draft(viewer, values, None)
        try:
            clip = await _uploaded_clip(sounds, viewer, form)
            values.clip = clip
            if clip is not None:
                draft = replace(draft, clip_id=clip.id)
            tip = await run_in_threadpool(sounds.tips.create, _actor(viewer), draft)
        except (SoundError, UploadRefused) as exc:
            raise _refusal(viewer, exc) from None
    except Refused as refused:
        return await run_in_threadpool(_tips_page, request, viewer, sounds, line,
                                       status=refused.status, notice=refused.message,
                                       tip_form=values)
    await sounds.sounds.check(sounds.tips, tip)
    return _back(line)


@router.get("/marketing/tips/{tip_id}", response_class=HTMLResponse)
def edit_tip_page(request: Request, tip_id: TipId, viewer: Marketer, sounds: Sounds,
                  line: str | None = None) -> Response:
    try:
        tip = sounds.tips.tip(tip_id)
    except SoundError as exc:
        return _tips_page(request, viewer, sounds, line, status=exc.status,
                          notice=_refusal(viewer, exc).message)
    clip = sounds.tips.clip(tip.clip_id) if tip.clip_id else None
    return _edit_page(request, viewer, sounds, tip, _tip_form(tip, clip), line)


def _edit_page(request: Request, viewer: SignedIn, sounds: SoundServices, tip: Tip,
               values: TipForm, line: str | None, *, status: int = 200, notice: str = ""
               ) -> Response:
    history = sounds.tips.history(tip.id)
    back = line or (tip.lines[0] if tip.lines else None)
    return render(
        "marketing_tip.html", viewer.person.locale, status, viewer=viewer,
        csrf=viewer.csrf_token, here=f"/marketing/tips/{tip.id}", tip=tip, tip_form=values,
        lines=sounds.tips.lines(), locales=LOCALES, history=history, notice=notice,
        back_line=back, seconds=_seconds, plain=_plain_change)


def _plain_change(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


@router.post("/marketing/tips/{tip_id}")
async def update_tip(request: Request, tip_id: TipId, viewer: Marketer, sounds: Sounds,
                     form: CheckedUpload) -> Response:
    try:
        tip = await run_in_threadpool(sounds.tips.tip, tip_id)
    except SoundError as exc:
        return await run_in_threadpool(_tips_page, request, viewer, sounds, None,
                                       status=exc.status, notice=_refusal(viewer, exc).message)
    current_clip = (await run_in_threadpool(sounds.tips.clip, tip.clip_id)
                    if tip.clip_id else None)
    if form is None:
        return await run_in_threadpool(
            _edit_page, request, viewer, sounds, tip, _tip_form(tip, current_clip), None,
            status=413, notice=_too_large(viewer).message)
    keep = None if form.fields.get("drop_recording") == "on" else current_clip
    values = _posted(form, keep)
    line = form.fields.get("back_line") or None
    try:
        draft = _draft(viewer, values, keep.id if keep else None)
        try:
            clip = await _uploaded_clip(sounds, viewer, form)
            if clip is not None:
                values.clip = clip
                draft = replace(draft, clip_id=clip.id)
            saved = await run_in_threadpool(sounds.tips.update, _actor(viewer), tip_id, draft,
                                            values.version)
        except (SoundError, UploadRefused) as exc:
            raise _refusal(viewer, exc) from None
    except Refused as refused:
        return await run_in_threadpool(_edit_page, request, viewer, sounds, tip, values, line,
                                       status=refused.status, notice=refused.message)
    await sounds.sounds.check(sounds.tips, saved)
    return _back(line)


def _act(request: Request, viewer: SignedIn, sounds: SoundServices, form: Form,
         change: Any) -> Response:
    """Apply one change; back to the line, or the line again with why it did not happen."""
    line = form.get("line") or None
    try:
        change()
    except SoundError as exc:
        refused = _refusal(viewer, exc)
        return _tips_page(request, viewer, sounds, line, status=refused.status,
                          notice=refused.message)
    return _back(line)


@router.post("/marketing/tips/{tip_id}/move")
def move_tip(request: Request, tip_id: TipId, viewer: Marketer, sounds: Sounds,
             form: CheckedForm) -> Response:
    line = form.get("line", "")
    step = -1 if form.get("direction") == "up" else 1

    def change() -> None:
        ids = [tip.id for tip in sounds.tips.tips(line)]
        if tip_id not in ids:
            raise StaleEdit(f"tip {tip_id} is no longer on line {line}: reload the page")
        at = ids.index(tip_id)
        other = at + step
        if 0 <= other < len(ids):
            ids[at], ids[other] = ids[other], ids[at]
            sounds.tips.reorder(_actor(viewer), line, ids)

    return _act(request, viewer, sounds, form, change)


@router.post("/marketing/tips/{tip_id}/enable")
def enable_tip(request: Request, tip_id: TipId, viewer: Marketer, sounds: Sounds,
               form: CheckedForm) -> Response:
    return _act(request, viewer, sounds, form, lambda: sounds.tips.set_enabled(
        _actor(viewer), tip_id, True, _int(form.get("version"), 0) or None))


@router.post("/marketing/tips/{tip_id}/disable")
def disable_tip(request: Request, tip_id: TipId, viewer: Marketer, sounds: Sounds,
                form: CheckedForm) -> Response:
    return _act(request, viewer, sounds, form, lambda: sounds.tips.set_enabled(
        _actor(viewer), tip_id, False, _int(form.get("version"), 0) or None))


@router.post("/marketing/tips/{tip_id}/delete")
def delete_tip(request: Request, tip_id: TipId, viewer: Marketer, sounds: Sounds,
               form: CheckedForm) -> Response:
    return _act(request, viewer, sounds, form, lambda: sounds.tips.delete(
        _actor(viewer), tip_id, _int(form.get("version"), 0) or None))


@router.get("/marketing/tips/{tip_id}/audio.wav")
async def tip_audio(tip_id: TipId, _viewer: Marketer, sounds: Sounds) -> Response:
    with sound_errors():
        tip = await run_in_threadpool(sounds.tips.tip, tip_id)
    return await tip_sound(sounds, tip)


# -- the prompts page -------------------------------------------------------------------------

def _prompts_page(request: Request, viewer: SignedIn, sounds: SoundServices, *,
                  status: int = 200, notice: str = "", focus: str = "") -> Response:
    return render(
        "marketing_prompts.html", viewer.person.locale, status, viewer=viewer,
        csrf=viewer.csrf_token, here="/marketing/prompts", prompts=sounds.recordings.list(),
        notice=notice, focus=focus, seconds=_seconds)


@router.get("/marketing/prompts", response_class=HTMLResponse)
def prompts(request: Request, viewer: Marketer, sounds: Sounds) -> Response:
    return _prompts_page(request, viewer, sounds)


PromptId = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9_.-]+$")]
Locale = Annotated[str, Path(max_length=16, pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")]


@router.post("/marketing/prompts/{prompt_id}/{locale}/recording")
async def record_prompt(request: Request, prompt_id: PromptId, locale: Locale,
                        viewer: Marketer, sounds: Sounds, form: CheckedUpload) -> Response:
    focus = f"{prompt_id}-{locale}"
    try:
        if form is None:
            raise _too_large(viewer)
        try:
            await run_in_threadpool(sounds.recordings.spoken, prompt_id, locale)
            clip = await sounds.decoded(form.file, form.filename)
            await run_in_threadpool(sounds.recordings.record, _actor(viewer), prompt_id,
                                    locale, clip, form.filename)
        except (SoundError, UploadRefused) as exc:
            raise _refusal(viewer, exc) from None
    except Refused as refused:
        return await run_in_threadpool(_prompts_page, request, viewer, sounds,
                                       status=refused.status, notice=refused.message,
                                       focus=focus)
    return RedirectResponse(f"/marketing/prompts#{focus}", status_code=303)


@router.post("/marketing/prompts/{prompt_id}/{locale}/remove")
def remove_recording(request: Request, prompt_id: PromptId, locale: Locale,
                     viewer: Marketer, sounds: Sounds, _form: CheckedForm) -> Response:
    focus = f"{prompt_id}-{locale}"
    try:
        sounds.recordings.remove(_actor(viewer), prompt_id, locale)
    except SoundError as exc:
        refused = _refusal(viewer, exc)
        return _prompts_page(request, viewer, sounds, status=refused.status,
                             notice=refused.message, focus=focus)
    return RedirectResponse(f"/marketing/prompts#{focus}", status_code=303)


@router.get("/marketing/prompts/{prompt_id}/{locale}/audio.wav")
async def prompt_audio(prompt_id: PromptId, locale: Locale, _viewer: Marketer,
                       sounds: Sounds) -> Response:
    with sound_errors():
        view, words = await run_in_threadpool(sounds.recordings.spoken, prompt_id, locale)
        return heard_wav(await sounds.sounds.prompt(view, words))
