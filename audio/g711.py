"""G.711 mu-law and A-law, straight from 16-bit linear PCM (placeholder: the audio helper owns it)."""

from enum import Enum


class Law(Enum):
    ULAW = "ulaw"
    ALAW = "alaw"
