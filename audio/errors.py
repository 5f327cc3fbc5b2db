"""Errors of the audio package: audio we refuse to take apart from speech we failed to make."""


class AudioError(Exception):
    """Base of every error the audio package raises."""


class AudioFormatError(AudioError):
    """Audio given to us is in a form we do not accept (encoding, layout, size) or is damaged."""


class SpeechError(AudioError):
    """Text could not be turned into speech (no voice for the language, engine failure, silence)."""
