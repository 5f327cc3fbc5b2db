"""Errors of the audio package: audio we refuse to take apart from speech we failed to make."""


class AudioError(Exception):
    """Base of every error the audio package raises."""


class AudioFormatError(AudioError):
    """Audio given to us is in a form we do not accept (encoding, layout, size) or is damaged."""


class UploadRefused(AudioFormatError):
    """An uploaded recording we will not use: ``code`` is a stable id, ``message`` is for people.

    The message says what is wrong and what to do; it is shown as is to whoever uploaded the file.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)  # both in args: it crosses a process boundary (pickle)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpeechError(AudioError):
    """Text could not be turned into speech (no voice for the language, engine failure, silence)."""
