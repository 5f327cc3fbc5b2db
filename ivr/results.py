"""What a call through a flow achieved: typed constants, the one vocabulary the ivr, the
telephony backends and the campaigns share (stored as their string values)."""

from enum import StrEnum


class FlowResult(StrEnum):
    # Recorded by the interpreter itself.
    NO_INPUT = "no_input"  # the repeats ran out and no key was ever pressed
    INVALID = "invalid"  # the repeats ran out and at least one key was not one of the choices
    HUNG_UP = "hung_up"  # the far end hung up before anything was recorded
    COMPLETED = "completed"  # the flow reached its end without a choice recording anything
    # Recorded by the flows' choices.
    SCORE = "score"  # survey: a rating, the value 1-5
    INVOICE = "invoice"  # warning: send the invoice again
    MANAGER = "manager"  # warning: the account manager should call back
    TRANSFERRED = "transferred"  # warning: put through to the account manager
    OPT_OUT = "opt_out"  # warning: no more calls
