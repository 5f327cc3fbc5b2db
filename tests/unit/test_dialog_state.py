"""The stored snapshot of a dialog: JSON round trip, refusal of anything we did not write, and
what a successor learns from the answer to its BYE."""

import json
from collections.abc import Callable
from typing import Any

import pytest

from telephony.sip.dialog import Dialog
from telephony.sip.dialog_state import (
    MAX_CSEQ,
    SUCCESSOR_CSEQ_MARGIN,
    DialogState,
    InvalidDialogState,
)
from telephony.sip.message import Response, parse_message
from telephony.sip.orphans import OrphanOutcome, orphan_result
from telephony.sip.uri import parse_uri
from tests.unit.test_sip_dialog import uac_dialog, uas_dialog

VIA = "SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bKsuccessor;rport"


def through_json(dialog: Dialog) -> Dialog:
    stored = json.loads(json.dumps(DialogState.of(dialog).to_json()))
    return DialogState.from_json(stored).to_dialog()


def bye_bytes(dialog: Dialog) -> bytes:
    return dialog.new_request("BYE", VIA, cseq=42).to_bytes()


def tricky_dialog() -> Dialog:
    """A strict router first, then a loose one; a target with every URI part we read."""
    return Dialog(
        call_id="a84b4c76e66710@pc33.example.com",
        local_tag="ourtag",
        remote_tag="",  # an RFC 2543 peer sent no tag
        local_address='"Ring \\"back\\"" <sip:ringback@pbx.example.com>;tag=ourtag',
        remote_address="<sip:+79991234567@pbx.example.com>",
        remote_target=parse_uri(
            "sip:+7999;isub=12:pw@[2001:db8::4]:5070;transport=udp;ob;maddr=10.0.0.1?subject=x"
        ),
        route_set=["<sip:10.0.0.2:5060;r2=on>", "<sip:[2001:db8::2];lr>"],
        local_seq=0,
    )


@pytest.mark.parametrize("make", [uac_dialog, uas_dialog, tricky_dialog])
def test_a_restored_dialog_sends_the_same_bye(make: Callable[[], Dialog]) -> None:
    dialog = make()
    restored = through_json(dialog)
    assert restored.remote_target == dialog.remote_target
    assert str(restored.remote_target) == str(dialog.remote_target)
    assert restored.next_hop() == dialog.next_hop()
    assert bye_bytes(restored) == bye_bytes(dialog)  # Request-URI, Route, From, To, Call-ID


def test_the_json_holds_only_strings_an_integer_and_a_list_of_strings() -> None:
    stored = DialogState.of(uac_dialog()).to_json()
    assert stored == {
        "version": 1,
        "call_id": "3848276298220188511@atlanta.example.com",
        "local_tag": "9fxced76sl",
        "remote_tag": "314159",
        "local_address": '"Ringback" <sip:ringback@atlanta.example.com>;tag=9fxced76sl',
        "remote_address": '"Bob" <sip:bob@biloxi.example.com>;tag=314159',
        "remote_target": "sip:bob@192.0.2.4;transport=udp",
        "route_set": ["<sip:ss1.atlanta.example.com;lr>", "<sip:ss2.biloxi.example.com;lr>"],
        "local_seq": 314159,
    }


def valid() -> dict[str, Any]:
    return DialogState.of(tricky_dialog()).to_json()


def changed(**values: Any) -> dict[str, Any]:
    return {**valid(), **values}


def without(key: str) -> dict[str, Any]:
    data = valid()
    del data[key]
    return data


@pytest.mark.parametrize(
    ("stored", "complaint"),
    [
        ([valid()], "a JSON object, not list"),
        ("{}", "a JSON object, not str"),
        (None, "a JSON object, not NoneType"),
        (without("route_set"), r"missing \['route_set'\]"),
        (changed(cseq=1), r"unexpected \['cseq'\]"),
        (changed(version=2), "unknown dialog state version 2"),
        (changed(call_id=7), "call_id must be a string, not int"),
        (changed(call_id="x\r\nVia: SIP/2.0/UDP evil"), "call_id holds a control character"),
        (changed(call_id=""), "must not be empty"),
        (changed(remote_target="tel:+79991234567"), "remote_target is not readable"),
        (changed(remote_target=None), "remote_target must be a string"),
        (changed(route_set="<sip:10.0.0.2;lr>"), "route_set must be a list, not str"),
        (changed(route_set=[1]), "a route_set entry must be a string"),
        (changed(route_set=["<sip:10.0.0.2;lr"]), "a route_set entry is not readable"),
        (changed(local_address="<sip:ringback@pbx.example.com>;tag=other"), "tags do not match"),
        (changed(remote_tag="theirs"), "tags do not match"),
        (changed(local_address="not an address"), "local_address is not readable"),
        (changed(local_seq="1"), "local_seq must be an integer"),
        (changed(local_seq=True), "local_seq must be an integer"),
        (changed(local_seq=-1), "local_seq must be an integer"),
        (changed(local_seq=1.0), "local_seq must be an integer"),
        (changed(local_seq=MAX_CSEQ), "local_seq must be an integer"),
    ],
)
def test_a_state_we_did_not_write_is_refused(stored: object, complaint: str) -> None:
    with pytest.raises(InvalidDialogState, match=complaint):
        DialogState.from_json(stored)


def test_the_highest_cseq_a_successor_can_still_exceed_is_accepted() -> None:
    highest = MAX_CSEQ - SUCCESSOR_CSEQ_MARGIN
    assert DialogState.from_json(changed(local_seq=highest)).successor_cseq == MAX_CSEQ


def test_invalid_state_is_a_value_error() -> None:  # callers that only know ValueError catch it
    with pytest.raises(ValueError):
        DialogState.from_json({})


# --- what the answer to the successor's BYE says ------------------------------------------------


def response(status: int, reason: str) -> Response:
    parsed = parse_message(
        f"SIP/2.0 {status} {reason}\r\nVia: {VIA}\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2"
        f"\r\nCall-ID: c@h\r\nCSeq: 11 BYE\r\nContent-Length: 0\r\n\r\n".encode()
    )
    assert isinstance(parsed, Response)
    return parsed


@pytest.mark.parametrize(
    ("status", "reason", "outcome", "ended"),
    [
        (200, "OK", OrphanOutcome.ANSWERED, True),
        (481, "Call Does Not Exist", OrphanOutcome.GONE, True),
        (408, "Request Timeout", OrphanOutcome.TIMEOUT, False),
        (404, "Not here", OrphanOutcome.REFUSED, False),
        (500, "Server Internal Error", OrphanOutcome.REFUSED, False),
    ],
)
def test_final_responses_to_the_bye(
    status: int, reason: str, outcome: OrphanOutcome, ended: bool
) -> None:
    result = orphan_result("c@h", response(status, reason))
    assert (result.call_id, result.outcome, result.sip_status, result.reason) == (
        "c@h", outcome, status, reason)
    assert result.ended is ended


def test_no_response_at_all_is_a_timeout() -> None:
    result = orphan_result("c@h", None)
    assert (result.outcome, result.sip_status, result.ended) == (OrphanOutcome.TIMEOUT, None,
                                                                 False)
