"""What a change to hold lines, tips and recorded prompts can run into, with the stable ids the
API and the marketing page show.

    SoundError
    ├── NotFound          no such tip, line, clip or prompt          (404 <thing>-not-found)
    ├── InvalidSound      the draft does not make sense              (422 invalid-tip, ...)
    ├── StaleEdit         changed by someone else since it was read  (409 edit-conflict)
    └── PromptHasValues   the prompt speaks a call's own values      (409 prompt-has-values)

Refused uploads are `audio.errors.UploadRefused` (422, their own codes).
"""


class SoundError(Exception):
    status = 400
    code = "sound-error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(SoundError):
    status = 404

    def __init__(self, thing: str, key: object) -> None:
        super().__init__(f"there is no {thing.replace('-', ' ')} {key}", f"{thing}-not-found")


class InvalidSound(SoundError):
    status = 422
    code = "invalid-tip"


class StaleEdit(SoundError):
    status = 409
    code = "edit-conflict"


class PromptHasValues(SoundError):
    status = 409
    code = "prompt-has-values"
