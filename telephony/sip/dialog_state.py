"""A snapshot of an established dialog, stored so that a successor process can end a call its
dead predecessor left up (sans-IO).

`DialogState.to_json()` gives a JSON object of strings, one integer and a list of strings:

    {"version": 1, "call_id": "…", "local_tag": "…", "remote_tag": "…",
     "local_address": "<sip:ringback@pbx>;tag=…", "remote_address": "<sip:…@pbx>;tag=…",
     "remote_target": "sip:…@10.0.0.7:5060", "route_set": ["<sip:10.0.0.2;lr>"], "local_seq": 1}

`DialogState.from_json()` reads it back and refuses anything it did not write whole.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from telephony.sip.dialog import Dialog
from telephony.sip.errors import SipError, SipParseError
from telephony.sip.uri import Address, SipUri, parse_address, parse_uri

STATE_VERSION = 1
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5
# A successor's BYE goes this far above the stored CSeq: the state is stored when the call is
# answered, the dead process may have sent in-dialog requests after that (its own BYE among
# them), and a far end refuses a CSeq lower than the last one it saw (RFC 3261 12.2.2). Ours
# never sends more than a few per call.
SUCCESSOR_CSEQ_MARGIN = 10
_TEXT_KEYS = ("call_id", "local_tag", "remote_tag", "local_address", "remote_address",
              "remote_target")
_KEYS = frozenset({"version", *_TEXT_KEYS, "route_set", "local_seq"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # would break (or forge) a header line

T = TypeVar("T")


class InvalidDialogState(SipError, ValueError):
    """A stored dialog state that is not one we wrote: refused whole, never half-used."""


@dataclass(frozen=True)
class DialogState:
    """What it takes to send BYE in a dialog: identifiers, addresses, route set, CSeq."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_address: str  # with our tag
    remote_address: str  # with theirs
    remote_target: SipUri
    route_set: tuple[str, ...]
    local_seq: int  # the last CSeq number we used in the dialog

    @property
    def successor_cseq(self) -> int:
        """The CSeq number of a BYE sent by another process than the one that stored us."""
        return self.local_seq + SUCCESSOR_CSEQ_MARGIN

    @classmethod
    def of(cls, dialog: Dialog) -> "DialogState":
        return cls(
            call_id=dialog.call_id,
            local_tag=dialog.local_tag,
            remote_tag=dialog.remote_tag,
            local_address=dialog.local_address,
            remote_address=dialog.remote_address,
            remote_target=dialog.remote_target,
            route_set=tuple(dialog.route_set),
            local_seq=dialog.local_seq,
        )

    def to_dialog(self) -> Dialog:
        return Dialog(
            call_id=self.call_id,
            local_tag=self.local_tag,
            remote_tag=self.remote_tag,
            local_address=self.local_address,
            remote_address=self.remote_address,
            remote_target=self.remote_target,
            route_set=list(self.route_set),
            local_seq=self.local_seq,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "call_id": self.call_id,
            "local_tag": self.local_tag,
            "remote_tag": self.remote_tag,
            "local_address": self.local_address,
            "remote_address": self.remote_address,
            "remote_target": str(self.remote_target),
            "route_set": list(self.route_set),
            "local_seq": self.local_seq,
        }

    @classmethod
    def from_json(cls, data: object) -> "DialogState":
        """The state `to_json` wrote; raises `InvalidDialogState` saying what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidDialogState(f"a dialog state is a JSON object, not {type(data).__name__}")
        _check_keys(data)
        if data["version"] != STATE_VERSION:
            raise InvalidDialogState(f"unknown dialog state version {data['version']!r}")
        text = {key: _text(key, data[key]) for key in _TEXT_KEYS}
        routes = _routes(data["route_set"])
        state = cls(
            call_id=text["call_id"],
            local_tag=text["local_tag"],
            remote_tag=text["remote_tag"],
            local_address=text["local_address"],
            remote_address=text["remote_address"],
            remote_target=_parsed("remote_target", text["remote_target"], parse_uri),
            route_set=routes,
            local_seq=_cseq(data["local_seq"]),
        )
        _check_identity(state)
        return state


def _check_keys(data: Mapping[Any, Any]) -> None:
    missing = sorted(_KEYS - set(data))
    unexpected = sorted(str(key) for key in set(data) - _KEYS)
    if missing or unexpected:
        raise InvalidDialogState(f"dialog state keys: missing {missing}, unexpected {unexpected}")


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidDialogState(f"{key} must be a string, not {type(value).__name__}")
    if _CONTROL.search(value):
        raise InvalidDialogState(f"{key} holds a control character")
    return value


def _routes(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidDialogState(f"route_set must be a list, not {type(value).__name__}")
    routes = tuple(_text("a route_set entry", item) for item in value)
    for route in routes:
        _parsed("a route_set entry", route, parse_address)
    return routes


def _cseq(value: object) -> int:
    highest = MAX_CSEQ - SUCCESSOR_CSEQ_MARGIN
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= highest:
        raise InvalidDialogState(f"local_seq must be an integer from 0 to {highest}")
    return value


def _parsed(key: str, value: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(value)
    except SipParseError as exc:
        raise InvalidDialogState(f"{key} is not readable: {exc}") from exc


def _party(text: str) -> Address:
    """A From / To value: a trunk may name its parties with tel: URIs."""
    return parse_address(text, allow_tel=True)


def _check_identity(state: DialogState) -> None:
    """Our tag is never empty; each address carries the tag the state names."""
    if not state.call_id or not state.local_tag:
        raise InvalidDialogState("call_id and local_tag must not be empty")
    local = _parsed("local_address", state.local_address, _party)
    remote = _parsed("remote_address", state.remote_address, _party)
    if (local.tag or "") != state.local_tag or (remote.tag or "") != state.remote_tag:
        raise InvalidDialogState("the addresses' tags do not match local_tag / remote_tag")
