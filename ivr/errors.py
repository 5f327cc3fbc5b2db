"""Errors of the ivr package. A session never raises on events: whatever the line reports is
handled or ignored. Only definitions (flows, texts, overrides from configuration) can be wrong."""


class IvrError(Exception):
    """Base of every error the ivr package raises."""


class FlowError(IvrError):
    """A flow, its texts or an override of them is not usable (unknown step or prompt id, missing
    text, unknown locale or placeholder). Raised when the definition is built or resolved, never
    in the middle of a call."""
