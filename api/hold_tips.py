"""`/api/v1/hold-lines`, `/api/v1/hold-tips` and `/api/v1/clips`: what callers on hold hear, as
marketing keeps it (campaigns/hold_tips.py). Needs a marketing or admin token.

Edits name the `version` they were made on; a tip changed since is `409 edit-conflict`. A tip's
`audio_url` is the tip as the caller hears it (the line's μ-law decoded to a 16-bit 8 kHz WAV).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.auth import require_role
from api.errors import TOKEN_ERRORS, ApiError, error_responses
from api.state import Sounds, SoundServices
from api.tokens import ApiToken, Role
from api.uploads import BadUpload, UploadTooLarge, read_upload_form, too_large_refusal
from audio.errors import AudioError, UploadRefused
from audio.g711 import Law, decode
from audio.prompts import EncodedPrompt
from audio.wav import wav_bytes
from campaigns.audio_clips import ClipInfo
from campaigns.hold_errors import SoundError
from campaigns.hold_stats import TipStats
from campaigns.hold_tips import HistoryEntry, Line, Tip, TipDraft
from ivr.hold_rotation import HoldTiming, RotationMode

router = APIRouter(prefix="/api/v1", tags=["hold tips"])

Marketer = Annotated[ApiToken, Depends(require_role(Role.MARKETING))]
MAX_ID = 2**31 - 1
LINE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TipId = Annotated[int, Path(description="the tip's id", ge=1, le=MAX_ID)]
LineName = Annotated[str, Path(description="the line's name, e.g. main", pattern=LINE_PATTERN)]


def _iso_text(value: object) -> object:
    """Dates and times come as ISO 8601 strings only (not numbers)."""
    if not isinstance(value, str | date | time):
        raise ValueError("give it as an ISO 8601 string")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_text), Field(examples=["2026-12-01"])]
IsoTime = Annotated[time, BeforeValidator(_iso_text), Field(examples=["10:00"])]
LineRef = Annotated[str, StringConstraints(pattern=LINE_PATTERN)]
ClipId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200,
                                         pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")]
Written = Annotated[str, StringConstraints(max_length=2000,
                                           pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
LocaleTag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")]
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]

_ERRORS = {
    **TOKEN_ERRORS,
    404: "`tip-not-found`, `line-not-found`, `clip-not-found`",
    409: "`edit-conflict`: changed by someone else since `version` (reload it); for a new "
         "order: the line's tips changed; `tip-not-renderable`: its speech cannot be made",
    422: "`invalid-tip`, `invalid-line`, `invalid-request`: the request does not make sense "
         "(the message names what)",
}
ERRORS = error_responses(_ERRORS)
# A change with a JSON body: one that is not JSON at all is 400.
BODY_ERRORS = error_responses({400: "`bad-request`: the body is not JSON", **_ERRORS})
UPLOAD_ERRORS = error_responses({
    **TOKEN_ERRORS,
    400: "`bad-upload`: not a multipart form with a `file` field",
    413: "`audio-too-large`: over the size limit (nothing is read past it, nothing stored)",
    422: "`audio-empty`, `audio-unsupported-type`, `audio-unreadable`, `audio-too-long`, "
         "`audio-too-short`, `audio-truncated`, `audio-silent`, ...: the file is refused and "
         "nothing is stored (the message says what to do)",
})
UPLOAD_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary",
                                "description": "WAV, FLAC, OGG or MP3"}}}}}}}
WAV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": {}}, "description": "16-bit 8 kHz mono WAV"}}


@contextmanager
def sound_errors() -> Iterator[None]:
    """The services' errors as the API shows them."""
    try:
        yield
    except SoundError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except UploadRefused as exc:
        raise ApiError(413 if exc.code == "audio-too-large" else 422, exc.code,
                       exc.message) from None


def token_actor(token: ApiToken) -> str:
    return f"token:{token.name}"


def heard_wav(prompt: EncodedPrompt) -> Response:
    """What the line plays, as a browser can play it: the μ-law decoded to 16-bit PCM."""
    pcm = decode(prompt.ulaw, Law.ULAW).astype("<i2").tobytes()
    return Response(wav_bytes(pcm), media_type="audio/wav",
                    headers={"Cache-Control": "no-store"})


async def upload_clip(request: Request) -> tuple[bytes, str]:
    """The request's `file`, bounded (api/uploads.py): its bytes and name."""
    try:
        form = await read_upload_form(request)
    except UploadTooLarge:
        refusal = too_large_refusal()
        raise ApiError(413, refusal.code, refusal.message) from None
    except BadUpload as exc:
        raise ApiError(400, "bad-upload", f"send the recording as multipart/form-data in a "
                       f"`file` field ({exc})") from None
    return form.file or b"", form.filename


# -- lines ------------------------------------------------------------------------------------

class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    rotation: RotationMode = RotationMode.ORDER
    first_delay_s: float = Field(5.0, ge=0, le=600, strict=True, allow_inf_nan=False)
    gap_s: float = Field(3.0, ge=0, le=600, strict=True, allow_inf_nan=False)
    gap_clip_id: ClipId | None = Field(None, description="an uploaded clip played between tips")


class LineOut(BaseModel):
    name: str
    title: str
    rotation: RotationMode
    first_delay_s: float
    gap_s: float
    gap_clip_id: str | None


class LineList(BaseModel):
    items: list[LineOut]


def line_out(line: Line) -> LineOut:
    return LineOut(name=line.name, title=line.title, rotation=line.rotation,
                   first_delay_s=line.timing.first_delay_s, gap_s=line.timing.gap_s,
                   gap_clip_id=line.gap_clip_id)


def line_from(name: str, body: LineIn) -> Line:
    try:
        timing = HoldTiming(body.first_delay_s, body.gap_s)
    except ValueError as exc:
        raise ApiError(422, "invalid-line", str(exc)) from None
    return Line(name, body.title, body.rotation, timing, body.gap_clip_id)


@router.get("/hold-lines", response_model=LineList, summary="List hold lines",
            responses=ERRORS)
def list_lines(_token: Marketer, sounds: Sounds) -> LineList:
    """Every hold line with its rotation, timing and music bed, by name."""
    return LineList(items=[line_out(line) for line in sounds.tips.lines()])


@router.put("/hold-lines/{name}", response_model=LineOut, summary="Create or change a line",
            responses=BODY_ERRORS)
def save_line(name: LineName, body: LineIn, token: Marketer, sounds: Sounds) -> LineOut:
    """Create the line `name`, or change its title, rotation (`order` or `weight`), the wait
    before the first tip, the gap between tips and the music bed (`gap_clip_id`, from `POST
    /api/v1/clips`; null: silence)."""
    with sound_errors():
        return line_out(sounds.tips.save_line(token_actor(token), line_from(name, body)))


# -- tips -------------------------------------------------------------------------------------

class Schedule(BaseModel):
    """When a tip may play: between two dates (inclusive, either open) and daily hours
    (wall-clock time in the business's zone; both or neither)."""

    model_config = ConfigDict(extra="forbid")

    starts_on: IsoDate | None = None
    ends_on: IsoDate | None = None
    daily_from: IsoTime | None = None
    daily_to: IsoTime | None = None


class TipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    locale: LocaleTag = Field(examples=["ru"])
    lines: list[LineRef] = Field(min_length=1, max_length=50, examples=[["main"]])
    text: Written | None = Field(None, description="spoken unless clip_id is set")
    clip_id: ClipId | None = Field(None, description="an uploaded clip (POST /api/v1/clips) "
                                                     "played instead of the text")
    weight: int = Field(1, ge=1, le=100, strict=True)
    schedule: Schedule = Field(default_factory=Schedule)
    enabled: bool = Field(True, strict=True)

    def draft(self) -> TipDraft:
        return TipDraft(title=self.title, locale=self.locale, lines=tuple(self.lines),
                        text=self.text, clip_id=self.clip_id, weight=self.weight,
                        starts_on=self.schedule.starts_on, ends_on=self.schedule.ends_on,
                        daily_from=self.schedule.daily_from, daily_to=self.schedule.daily_to,
                        enabled=self.enabled)


class TipEdit(TipIn):
    version: Version = Field(description="the version the edit was made on")


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version | None = Field(None, description="refused if the tip changed since")


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]] = Field(
        max_length=1000, description="every tip of the line, in play order")


class TipOut(BaseModel):
    id: int
    title: str
    locale: str
    text: str | None
    clip_id: str | None
    lines: list[str]
    weight: int
    position: int
    schedule: Schedule
    enabled: bool
    render_error: str | None
    version: int
    updated_at: datetime | None
    updated_by: str
    plays: int
    hangups: int
    audio_url: str


class TipList(BaseModel):
    items: list[TipOut]


class HistoryOut(BaseModel):
    at: datetime
    actor: str
    action: Literal["hold_tip.create", "hold_tip.update", "hold_tip.enable",
                    "hold_tip.disable", "hold_tip.move", "hold_tip.delete"] | str
    changes: dict[str, Any] = Field(description="field -> [before, after]")


class HistoryList(BaseModel):
    items: list[HistoryOut]


class ClipOut(BaseModel):
    id: str
    duration_s: float
    source_name: str
    source_format: str
    loudness_lufs: float | None
    gain_db: float
    uploaded_by: str
    uploaded_at: datetime


def tip_out(tip: Tip, stats: TipStats | None = None) -> TipOut:
    stats = stats or TipStats()
    return TipOut(
        id=tip.id, title=tip.title, locale=tip.locale, text=tip.text, clip_id=tip.clip_id,
        lines=list(tip.lines), weight=tip.weight, position=tip.position,
        schedule=Schedule(starts_on=tip.starts_on, ends_on=tip.ends_on,
                          daily_from=tip.daily_from, daily_to=tip.daily_to),
        enabled=tip.enabled, render_error=tip.render_error, version=tip.version,
        updated_at=tip.updated_at, updated_by=tip.updated_by, plays=stats.plays,
        hangups=stats.hangups, audio_url=f"/api/v1/hold-tips/{tip.id}/audio.wav")


def clip_out(info: ClipInfo) -> ClipOut:
    return ClipOut(id=info.id, duration_s=info.duration_s, source_name=info.source_name,
                   source_format=info.source_format, loudness_lufs=info.loudness_lufs,
                   gain_db=info.gain_db, uploaded_by=info.uploaded_by,
                   uploaded_at=info.uploaded_at)


def with_stats(sounds: SoundServices, tips: list[Tip]) -> list[TipOut]:
    totals = sounds.stats.totals([tip.id for tip in tips])
    return [tip_out(tip, totals.get(tip.id)) for tip in tips]


async def checked(sounds: SoundServices, tip: Tip) -> Tip:
    """`tip` with its `render_error` as of now (its sound is made, or why it cannot be)."""
    error = await sounds.sounds.check(sounds.tips, tip)
    return replace(tip, render_error=error)


@router.get("/hold-tips", response_model=TipList, summary="List tips in play order",
            responses=ERRORS)
def list_tips(_token: Marketer, sounds: Sounds,
              line: Annotated[str | None, Query(pattern=LINE_PATTERN)] = None) -> TipList:
    """Every tip (or a line's), in play order, with its schedule, state, why its speech
    cannot be made (`render_error`), its plays and hang-ups, and `audio_url`."""
    with sound_errors():
        return TipList(items=with_stats(sounds, sounds.tips.tips(line)))


@router.post("/hold-tips", response_model=TipOut, status_code=201, summary="Create a tip",
             responses=BODY_ERRORS)
async def create_tip(body: TipIn, token: Marketer, sounds: Sounds) -> TipOut:
    """A new tip, last in its lines' order. Its speech is made at once: `render_error` says
    why it cannot be, if it cannot."""
    with sound_errors():
        tip = await run_in_threadpool(sounds.tips.create, token_actor(token), body.draft())
    return tip_out(await checked(sounds, tip))


@router.get("/hold-tips/{tip_id}", response_model=TipOut, summary="One tip", responses=ERRORS)
def get_tip(tip_id: TipId, _token: Marketer, sounds: Sounds) -> TipOut:
    """One tip, with its plays and hang-ups."""
    with sound_errors():
        return with_stats(sounds, [sounds.tips.tip(tip_id)])[0]


@router.put("/hold-tips/{tip_id}", response_model=TipOut, summary="Change a tip",
            responses=BODY_ERRORS)
async def update_tip(tip_id: TipId, body: TipEdit, token: Marketer, sounds: Sounds) -> TipOut:
    """Replace the tip's fields, if nobody changed it since `version` (else 409 `edit-
    conflict`, nothing changed)."""
    with sound_errors():
        tip = await run_in_threadpool(sounds.tips.update, token_actor(token), tip_id,
                                      body.draft(), body.version)
    return with_stats(sounds, [await checked(sounds, tip)])[0]


@router.delete("/hold-tips/{tip_id}", status_code=204, summary="Delete a tip",
               responses=ERRORS)
def delete_tip(tip_id: TipId, token: Marketer, sounds: Sounds,
               version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    """Delete the tip (and its play counts); with `?version=`, only if nobody changed it
    since."""
    with sound_errors():
        sounds.tips.delete(token_actor(token), tip_id, version)
    return Response(status_code=204)


@router.post("/hold-tips/{tip_id}/enable", response_model=TipOut, summary="Play the tip",
             responses=BODY_ERRORS)
def enable_tip(tip_id: TipId, token: Marketer, sounds: Sounds,
               body: VersionIn | None = None) -> TipOut:
    """The tip plays again (within its schedule). With `version`: only if unchanged since."""
    with sound_errors():
        tip = sounds.tips.set_enabled(token_actor(token), tip_id, True,
                                      body.version if body else None)
        return with_stats(sounds, [tip])[0]


@router.post("/hold-tips/{tip_id}/disable", response_model=TipOut,
             summary="Stop playing the tip", responses=BODY_ERRORS)
def disable_tip(tip_id: TipId, token: Marketer, sounds: Sounds,
                body: VersionIn | None = None) -> TipOut:
    """The tip stops playing. With `version`: only if unchanged since."""
    with sound_errors():
        tip = sounds.tips.set_enabled(token_actor(token), tip_id, False,
                                      body.version if body else None)
        return with_stats(sounds, [tip])[0]


@router.put("/hold-lines/{name}/order", response_model=TipList,
            summary="Put a line's tips in a new play order", responses=BODY_ERRORS)
def reorder(name: LineName, body: OrderIn, token: Marketer, sounds: Sounds) -> TipList:
    """The line's tips in the order of `ids`, which must name each of them once: a list made
    before a tip was added or removed is refused (409 `edit-conflict`)."""
    with sound_errors():
        return TipList(items=with_stats(sounds, sounds.tips.reorder(
            token_actor(token), name, body.ids)))


@router.get("/hold-tips/{tip_id}/history", response_model=HistoryList,
            summary="Who changed the tip, when, and what (newest first)", responses=ERRORS)
def tip_history(tip_id: TipId, _token: Marketer, sounds: Sounds) -> HistoryList:
    """Every change of the tip: who, when, what (field -> [before, after]), newest first."""
    with sound_errors():
        sounds.tips.tip(tip_id)
        return HistoryList(items=[history_out(entry) for entry in sounds.tips.history(tip_id)])


def history_out(entry: HistoryEntry) -> HistoryOut:
    return HistoryOut(at=entry.at, actor=entry.actor, action=entry.action,
                      changes=dict(entry.changes))


@router.get("/hold-tips/{tip_id}/audio.wav", summary="The tip as the caller hears it",
            response_class=Response, responses={**ERRORS, **WAV_RESPONSE})
async def tip_audio(tip_id: TipId, _token: Marketer, sounds: Sounds) -> Response:
    """The tip as the caller hears it: the line's μ-law decoded to a 16-bit 8 kHz mono WAV.
    409 `tip-not-renderable` when its speech cannot be made."""
    with sound_errors():
        tip = await run_in_threadpool(sounds.tips.tip, tip_id)
    return await tip_sound(sounds, tip)


async def tip_sound(sounds: SoundServices, tip: Tip) -> Response:
    """The tip's WAV, or 409 `tip-not-renderable` with why its speech cannot be made."""
    try:
        prompt = await sounds.sounds.tip(tip)
    except SoundError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except AudioError as exc:  # the speech engine's reason, noted on the tip too
        await sounds.sounds.check(sounds.tips, tip)
        raise ApiError(409, "tip-not-renderable", str(exc)) from None
    return heard_wav(prompt)


# -- clips ------------------------------------------------------------------------------------

@router.post("/clips", response_model=ClipOut, status_code=201,
             summary="Upload a recording (a tip's, or a line's music bed)",
             description="`multipart/form-data` with a `file` field: WAV, FLAC, OGG or MP3, "
                         "converted to 8 kHz mono and loudness-normalised. The same sound "
                         "uploaded twice is kept once.",
             responses=UPLOAD_ERRORS, openapi_extra=UPLOAD_BODY)
async def upload(request: Request, token: Marketer, sounds: Sounds) -> ClipOut:
    data, filename = await upload_clip(request)
    with sound_errors():
        clip = await sounds.decoded(data, filename)
        info = await run_in_threadpool(sounds.tips.store_clip, token_actor(token), clip,
                                       filename)
    return clip_out(info)
