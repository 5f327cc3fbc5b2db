"""Blind transfer by REFER: the sipfrag parser and the subscription state machine as pure logic,
then `Call.transfer` on an engine without sockets (`sip_offline`), the test playing the
transferee: NOTIFYs overtaking the 202, a BYE right after the 200 sipfrag, NOTIFYs for no
subscription, timeouts."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from telephony.sip.call import Call, EndReason
from telephony.sip.dialog import Dialog
from telephony.sip.errors import CallError
from telephony.sip.headers import Headers
from telephony.sip.message import Request, Response, make_response
from telephony.sip.sdp import LocalMedia
from telephony.sip.transfer import Referral, TransferResult, sipfrag_status
from tests.unit.sip_offline import FAR_END, GUARD_S, OfflineUa, invite, parse_request, sdp

LOCAL_TAG = "ourtag"
CALL_ID = f"call-1@{FAR_END[0]}"

# --- the sipfrag status line ---------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    (b"SIP/2.0 100 Trying\r\n", (100, "Trying")),
    (b"SIP/2.0 180", (180, "")),
    (b"SIP/2.0 200 OK\r\nContact: <sip:a@b>\r\n\r\n", (200, "OK")),
    (b"\r\nsip/2.0 486 Busy Here", (486, "Busy Here")),
    (b"SIP/2.0 603 Decline\n", (603, "Decline")),
])
def test_sipfrag_status_lines(body: bytes, expected: tuple[int, str]) -> None:
    assert sipfrag_status(body) == expected


@pytest.mark.parametrize("body", [b"", b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 99 Low",
                                  b"SIP/2.0 700 High", b"SIP/3.0 200 OK", b"HTTP/1.1 200 OK",
                                  b"SIP/2.0 2000 OK", b"\xff\xfe"])
def test_anything_else_is_no_status(body: bytes) -> None:
    assert sipfrag_status(body) is None


# --- the subscription state machine -------------------------------------------------------------


def notify(body: str, state: str = "active;expires=60", *, event: str = "refer;id=2",
           content_type: str = "message/sipfrag;version=2.0", cseq: int = 1) -> Request:
    headers = Headers()
    for name, value in [("Event", event), ("Subscription-State", state),
                        ("Content-Type", content_type), ("CSeq", f"{cseq} NOTIFY")]:
        if value:
            headers.add(name, value)
    return Request(headers, body.encode(), "NOTIFY", "sip:ringback@127.0.0.1")


def response(status: int, *extra: tuple[str, str]) -> Response:
    return Response(Headers(list(extra)), b"", status, "Whatever")


def test_202_then_progress_then_200_succeeds() -> None:
    referral = Referral(2)
    referral.on_response(response(202))
    assert referral.waiting and referral.accepted
    assert referral.on_notify(notify("SIP/2.0 100 Trying")) == 200
    assert referral.on_notify(notify("SIP/2.0 180 Ringing")) == 200
    assert referral.waiting and referral.progress == (180, "Ringing")
    assert referral.on_notify(notify("SIP/2.0 200 OK", "terminated;reason=noresource")) == 200
    assert referral.result == TransferResult(True, 200, "the transferee's call to the target: "
                                                        "200 OK")
    assert referral.on_notify(notify("SIP/2.0 200 OK")) == 481  # the subscription is over


def test_a_final_notify_may_overtake_the_202() -> None:
    referral = Referral(2)
    referral.on_notify(notify("SIP/2.0 486 Busy Here", "terminated"))
    referral.on_response(response(202))
    assert referral.result is not None
    assert (referral.result.succeeded, referral.result.status) == (False, 486)


@pytest.mark.parametrize("status", [405, 501, 403, 481, 603])
def test_a_refused_refer_fails_with_its_status(status: int) -> None:
    referral = Referral(2)
    referral.on_response(response(status))
    assert referral.result is not None
    assert (referral.result.succeeded, referral.result.status) == (False, status)
    assert not referral.subscribed


def test_no_response_at_all_fails_without_status() -> None:
    referral = Referral(2)
    referral.on_response(None)
    assert referral.result == TransferResult(False, None, "no response to the REFER")


def test_refer_sub_false_is_success_without_notifies() -> None:
    referral = Referral(2)
    referral.on_response(response(202, ("Refer-Sub", "false")))
    assert referral.result is not None and referral.result.succeeded
    assert referral.on_notify(notify("SIP/2.0 100 Trying")) == 481


def test_terminated_before_a_final_status_fails() -> None:
    referral = Referral(2)
    referral.on_response(response(202))
    referral.on_notify(notify("SIP/2.0 180 Ringing"))
    referral.on_notify(notify("SIP/2.0 180 Ringing", "terminated;reason=timeout"))
    assert referral.result == TransferResult(
        False, None, "subscription terminated (timeout) before a final status")


def test_a_final_status_decides_even_while_the_subscription_stays_active() -> None:
    referral = Referral(2)
    referral.on_notify(notify("SIP/2.0 200 OK"))
    assert referral.result is not None and referral.result.succeeded
    assert referral.on_notify(notify("SIP/2.0 200 OK", "terminated")) == 200  # still ours


@pytest.mark.parametrize("event", ["refer;id=3", "dialog", "", "presence;id=2"])
def test_notifies_for_another_subscription_get_481(event: str) -> None:
    referral = Referral(2)
    assert referral.on_notify(notify("SIP/2.0 200 OK", event=event)) == 481
    assert referral.waiting


def test_an_event_without_id_and_the_compact_form_match() -> None:
    referral = Referral(2)
    headers = Headers([("o", "Refer"), ("Content-Type", "message/sipfrag")])
    assert referral.on_notify(Request(headers, b"SIP/2.0 100 Trying", "NOTIFY", "sip:x@y")) == 200


def test_a_body_that_is_no_sipfrag_is_answered_and_ignored() -> None:
    referral = Referral(2)
    assert referral.on_notify(notify("SIP/2.0 200 OK", content_type="text/plain")) == 200
    assert referral.on_notify(notify("garbage")) == 200
    assert referral.waiting


def test_giving_up_names_the_last_progress() -> None:
    referral = Referral(2)
    referral.on_notify(notify("SIP/2.0 180 Ringing"))
    result = referral.give_up("no final NOTIFY within 5 s")
    assert result == TransferResult(False, None,
                                    "no final NOTIFY within 5 s (last reported: 180 Ringing)")
    assert referral.on_notify(notify("SIP/2.0 200 OK")) == 481


# --- Call.transfer on an offline engine ---------------------------------------------------------


class NullStream:
    """Stands in for `RtpStream`: transfer never touches media."""

    local_port = 40000
    closed = False

    def start(self, _params: object) -> None: ...

    def update(self, _params: object) -> None: ...

    def stop_playback(self) -> None: ...

    def close(self) -> None:
        self.closed = True


@dataclass
class Transferee:
    far_end: OfflineUa
    call: Call
    _cseq: int = 100

    async def refer(self) -> Request:
        return await self.far_end.wait_request("REFER")

    def answer(self, refer: Request, status: int = 202) -> None:
        self.far_end.feed(make_response(refer, status).to_bytes())

    def request(self, method: str, *extra: str, body: bytes = b"") -> None:
        self._cseq += 1
        lines = [
            f"{method} sip:ringback@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP {FAR_END[0]}:{FAR_END[1]};branch=z9hG4bK-far{self._cseq}",
            "Max-Forwards: 70",
            f"From: <sip:caller@{FAR_END[0]}>;tag=from1",
            f"To: <sip:ringback@127.0.0.1>;tag={LOCAL_TAG}",
            f"Call-ID: {CALL_ID}",
            f"CSeq: {self._cseq} {method}",
            *extra,
            f"Content-Length: {len(body)}",
        ]
        self.far_end.feed(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def notify(self, status_line: str, state: str = "active;expires=60",
               event: str = "refer") -> None:
        self.request("NOTIFY", f"Event: {event}", f"Subscription-State: {state}",
                     "Content-Type: message/sipfrag", body=status_line.encode() + b"\r\n")

    def answers(self, method: str) -> list[int]:
        return self.far_end.statuses(CALL_ID, method)


@pytest.fixture
async def transferee() -> AsyncIterator[Transferee]:
    """An answered call (built as `IncomingCall.answer` builds it); the test is the far end."""
    far_end = OfflineUa()
    request = parse_request(invite(1, sdp()))
    local = LocalMedia("127.0.0.1", NullStream.local_port)
    _, params = local.answer(request.body)
    dialog = Dialog.from_uas(request, LOCAL_TAG)
    stream: Any = NullStream()
    call = Call(far_end.ua.stack, dialog, local, stream, outbound=False)
    call.start_media(params)
    far_end.ua.stack.dialogs[dialog.key] = call
    yield Transferee(far_end, call)
    await call.hangup()


async def test_success_answers_every_notify_then_hangs_up(transferee: Transferee) -> None:
    transferring = asyncio.create_task(transferee.call.transfer("sip:agent@10.0.0.9", timeout=5))
    refer = await transferee.refer()
    assert refer.headers.get("Refer-To") == "<sip:agent@10.0.0.9>"
    assert refer.headers.get("Referred-By") == "<sip:ringback@127.0.0.1>"
    assert refer.uri == f"sip:caller@{FAR_END[0]}:{FAR_END[1]}"  # the remote target
    transferee.answer(refer)
    transferee.notify("SIP/2.0 100 Trying")
    transferee.notify("SIP/2.0 180 Ringing")
    transferee.notify("SIP/2.0 200 OK", "terminated;reason=noresource")
    result = await asyncio.wait_for(transferring, GUARD_S)
    assert (result.succeeded, result.status) == (True, 200)
    assert transferee.answers("NOTIFY") == [200, 200, 200]
    assert transferee.call.end_reason is EndReason.TRANSFERRED
    assert len(transferee.far_end.requests("BYE")) == 1
    assert transferee.call.dialog.key not in transferee.far_end.ua.stack.dialogs


async def test_a_bye_right_after_the_200_sipfrag_ends_the_call_as_transferred(
    transferee: Transferee,
) -> None:
    transferring = asyncio.create_task(transferee.call.transfer("agent", timeout=5))
    refer = await transferee.refer()
    assert refer.headers.get("Refer-To") == "<sip:agent@127.0.0.1>"  # a bare user: our domain
    transferee.answer(refer)
    transferee.notify("SIP/2.0 200 OK", "terminated;reason=noresource")
    transferee.request("BYE")  # before our side had a chance to send its own
    result = await asyncio.wait_for(transferring, GUARD_S)
    assert result.succeeded
    assert transferee.answers("BYE") == [200]
    assert transferee.call.end_reason is EndReason.TRANSFERRED
    assert transferee.far_end.requests("BYE") == []  # the far end hung up first: no BYE of ours


async def test_notifies_overtaking_the_202(transferee: Transferee) -> None:
    transferring = asyncio.create_task(transferee.call.transfer("agent", timeout=5))
    refer = await transferee.refer()
    transferee.notify("SIP/2.0 100 Trying")
    transferee.notify("SIP/2.0 486 Busy Here", "terminated")
    transferee.answer(refer)
    result = await asyncio.wait_for(transferring, GUARD_S)
    assert (result.succeeded, result.status) == (False, 486)
    assert transferee.answers("NOTIFY") == [200, 200]
    assert not transferee.call.ended.is_set()


async def test_a_refused_refer_keeps_the_call(transferee: Transferee) -> None:
    transferring = asyncio.create_task(transferee.call.transfer("agent", timeout=5))
    transferee.answer(await transferee.refer(), 501)
    result = await asyncio.wait_for(transferring, GUARD_S)
    assert (result.succeeded, result.status) == (False, 501)
    assert not transferee.call.ended.is_set()
    transferee.notify("SIP/2.0 200 OK")
    assert transferee.answers("NOTIFY") == [481]  # no subscription came of it


async def test_no_final_notify_times_out_and_the_call_goes_on(transferee: Transferee) -> None:
    transferring = asyncio.create_task(transferee.call.transfer("agent", timeout=0.3))
    transferee.answer(await transferee.refer())
    transferee.notify("SIP/2.0 180 Ringing")
    result = await asyncio.wait_for(transferring, GUARD_S)
    assert result == TransferResult(False, None, "no final NOTIFY within 0.3 s "
                                                 "(last reported: 180 Ringing)")
    assert not transferee.call.ended.is_set()


async def test_no_answer_to_the_refer_times_out(transferee: Transferee) -> None:
    result = await asyncio.wait_for(transferee.call.transfer("agent", timeout=0.2), GUARD_S)
    assert (result.succeeded, result.status) == (False, None)
    assert result.detail == "no answer to the REFER within 0.2 s"
    assert not transferee.call.ended.is_set()


async def test_a_refer_nobody_answers_fails_at_timer_f(transferee: Transferee) -> None:
    result = await asyncio.wait_for(transferee.call.transfer("agent", timeout=5), GUARD_S)
    assert result == TransferResult(False, None, "no response to the REFER")  # 64*T1 = 0.64 s
    assert len(transferee.far_end.requests("REFER")) > 1  # retransmitted (Timer E) till then


async def test_unknown_notifies_get_481(transferee: Transferee) -> None:
    transferee.notify("SIP/2.0 200 OK")  # in the dialog, but we never sent a REFER
    assert transferee.answers("NOTIFY") == [481]
    transferee.far_end.feed(b"\r\n".join([
        b"NOTIFY sip:ringback@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP {FAR_END[0]}:{FAR_END[1]};branch=z9hG4bK-stray".encode(),
        b"Max-Forwards: 70", f"From: <sip:x@{FAR_END[0]}>;tag=x1".encode(),
        b"To: <sip:ringback@127.0.0.1>", b"Call-ID: stray-notify", b"CSeq: 1 NOTIFY",
        b"Event: refer", b"Subscription-State: active", b"Content-Length: 0", b"", b"",
    ]))
    assert transferee.far_end.statuses("stray-notify", "NOTIFY") == [481]  # outside any dialog
    assert not transferee.call.ended.is_set()


async def test_one_transfer_at_a_time_and_none_on_an_ended_call(
    transferee: Transferee,
) -> None:
    first = asyncio.create_task(transferee.call.transfer("agent", timeout=5))
    refer = await transferee.refer()
    second = await transferee.call.transfer("other", timeout=5)
    assert second == TransferResult(False, None, "a transfer is already in progress")
    transferee.answer(refer, 403)
    assert (await asyncio.wait_for(first, GUARD_S)).status == 403
    await transferee.call.hangup()
    ended = await transferee.call.transfer("agent", timeout=5)
    assert ended == TransferResult(False, None, "the call has ended")


async def test_a_tel_target_is_refused_before_anything_is_sent(transferee: Transferee) -> None:
    with pytest.raises(CallError):
        await transferee.call.transfer("tel:+79991234567")
    assert transferee.far_end.requests("REFER") == []


async def test_the_dialog_outlives_a_bye_while_the_transfer_is_pending(
    transferee: Transferee,
) -> None:
    """RFC 5057: the subscription is a usage of the dialog; a BYE ends only the call."""
    transferring = asyncio.create_task(transferee.call.transfer("agent", timeout=5))
    transferee.answer(await transferee.refer())
    transferee.request("BYE")
    assert transferee.call.end_reason is EndReason.REMOTE_HANGUP
    transferee.request("INFO")
    transferee.notify("SIP/2.0 200 OK", "terminated")
    result = await asyncio.wait_for(transferring, GUARD_S)
    assert result.succeeded
    assert transferee.answers("INFO") == [481]
    assert transferee.answers("NOTIFY") == [200]
    assert transferee.far_end.requests("BYE") == []
    assert transferee.call.dialog.key not in transferee.far_end.ua.stack.dialogs
