"""`/api/v1/prompts`: every robot prompt in every locale, and recordings of them. A recording of
a prompt replaces its speech in every call in that locale; prompts that speak the call's own
values (an amount, a date) stay synthetic (`409 prompt-has-values`). Marketing or admin token.
"""

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.errors import TOKEN_ERRORS, error_responses
from api.hold_tips import (
    UPLOAD_BODY,
    UPLOAD_ERRORS,
    WAV_RESPONSE,
    ClipOut,
    Marketer,
    clip_out,
    heard_wav,
    sound_errors,
    token_actor,
    upload_clip,
)
from api.state import Sounds
from campaigns.prompt_recordings import PromptView

router = APIRouter(prefix="/api/v1", tags=["prompts"])

PromptId = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9_.-]+$")]
Locale = Annotated[str, Path(max_length=16, pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")]
_PROMPT_ERRORS = {
    **TOKEN_ERRORS,
    404: "`prompt-not-found`: no such prompt in that locale; `recording-not-found`",
    409: "`prompt-has-values`: the prompt speaks the call's own values and stays synthetic",
}
ERRORS = error_responses({
    **_PROMPT_ERRORS,
    422: "`invalid-request`: the prompt id or locale is not well formed",
})
RECORDING_ERRORS = {**UPLOAD_ERRORS, **error_responses(_PROMPT_ERRORS)}


class PromptOut(BaseModel):
    prompt_id: str
    locale: str
    template: str
    flows: list[str]
    call_values: list[str]
    recordable: bool
    recording: ClipOut | None
    audio_url: str | None  # None: synthetic with the call's values, nothing fixed to hear


class PromptList(BaseModel):
    items: list[PromptOut]


def prompt_out(view: PromptView) -> PromptOut:
    text = view.text
    return PromptOut(
        prompt_id=text.prompt_id, locale=text.locale, template=text.template,
        flows=list(text.flows), call_values=list(text.call_values), recordable=view.recordable,
        recording=clip_out(view.recording) if view.recording is not None else None,
        audio_url=(f"/api/v1/prompts/{text.prompt_id}/{text.locale}/audio.wav"
                   if view.recordable else None))


@router.get("/prompts", response_model=PromptList, summary="Every prompt in every locale",
            responses=ERRORS)
def list_prompts(_token: Marketer, sounds: Sounds) -> PromptList:
    """Every robot prompt in every locale: its text (configuration's overrides applied), the
    flows that speak it, the call's own values it speaks (`call_values`: then it stays
    synthetic), and its recording."""
    return PromptList(items=[prompt_out(view) for view in sounds.recordings.list()])


@router.put("/prompts/{prompt_id}/{locale}/recording", response_model=PromptOut,
            summary="Record a prompt (replaces an earlier recording)",
            responses=RECORDING_ERRORS, openapi_extra=UPLOAD_BODY)
async def record_prompt(prompt_id: PromptId, locale: Locale, request: Request,
                        token: Marketer, sounds: Sounds) -> PromptOut:
    """`multipart/form-data` with a `file` (WAV, FLAC, OGG or MP3): from the next call on,
    calls in this locale play it instead of the speech. 409 `prompt-has-values` for a prompt
    that speaks the call's own values (checked before the upload is read)."""
    with sound_errors():
        # A missing prompt, or one with the call's values, is refused before the upload is read.
        await run_in_threadpool(sounds.recordings.spoken, prompt_id, locale)
        data, filename = await upload_clip(request)
        clip = await sounds.decoded(data, filename)
        recorded = await run_in_threadpool(
            sounds.recordings.record, token_actor(token), prompt_id, locale, clip, filename)
    return prompt_out(recorded)


@router.delete("/prompts/{prompt_id}/{locale}/recording", response_model=PromptOut,
               summary="Speak the prompt again (drop its recording)", responses=ERRORS)
def remove_recording(prompt_id: PromptId, locale: Locale, token: Marketer,
                     sounds: Sounds) -> PromptOut:
    """Calls in this locale speak the prompt again."""
    with sound_errors():
        return prompt_out(sounds.recordings.remove(token_actor(token), prompt_id, locale))


@router.get("/prompts/{prompt_id}/{locale}/audio.wav",
            summary="The prompt as a call hears it (its recording, else its speech)",
            response_class=Response, responses={**ERRORS, **WAV_RESPONSE})
async def prompt_audio(prompt_id: PromptId, locale: Locale, _token: Marketer,
                       sounds: Sounds) -> Response:
    """The prompt as a call hears it: its recording, else its speech (16-bit 8 kHz mono
    WAV). 409 `prompt-has-values` for a prompt whose words differ from call to call."""
    with sound_errors():
        view, words = await run_in_threadpool(sounds.recordings.spoken, prompt_id, locale)
        return heard_wav(await sounds.sounds.prompt(view, words))
