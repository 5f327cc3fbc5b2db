"""Blind transfer by REFER (RFC 3515) on an established call.

We send an in-dialog REFER naming the target (Refer-To) and ourselves (Referred-By, RFC 3892).
A 2xx creates an implicit subscription in the same dialog: the transferee reports how its INVITE
to the target goes in NOTIFYs (Event: refer;id=<REFER CSeq>, a `message/sipfrag` body holding
the status line, RFC 3420). A NOTIFY may overtake the REFER's 2xx; a final status ends the
transfer, `Subscription-State: terminated` ends the subscription. A non-2xx to the REFER (405,
501, 403...) means the peer will not transfer: the call goes on.

`Referral` is the sans-IO part (one REFER, its responses and NOTIFYs); `await_referral` sends
the REFER and waits for the outcome; `Call.transfer` ties it to the call.
"""

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.dialog import Dialog
from telephony.sip.endpoint import Exchange
from telephony.sip.errors import CallError
from telephony.sip.message import Request, Response
from telephony.sip.stack import ALLOW, Stack
from telephony.sip.uri import parse_address, value_and_params

log = logging.getLogger(__name__)

SIPFRAG = "message/sipfrag"
EVENT_PACKAGE = "refer"
_STATUS_LINE = re.compile(r"SIP/2\.0[ \t]+([1-6][0-9]{2})(?:[ \t]+(.*))?", re.IGNORECASE)


@dataclass(frozen=True)
class TransferResult:
    """How a transfer ended. `status`: the final status the transferee reported (sipfrag) or
    the REFER's own non-2xx final response; None when neither came (timeout, no answer)."""

    succeeded: bool
    status: int | None
    detail: str


def sipfrag_status(body: bytes) -> tuple[int, str] | None:
    """The status code and reason phrase of a `message/sipfrag` body whose first line is a SIP
    status line (`SIP/2.0 180`, `SIP/2.0 200 OK`); None for anything else."""
    first = body.decode("utf-8", "replace").lstrip("\r\n").split("\n", 1)[0].strip()
    match = _STATUS_LINE.fullmatch(first)
    if match is None:
        return None
    return int(match.group(1)), (match.group(2) or "").strip()


def is_sipfrag(content_type: str | None) -> bool:
    return content_type is not None and value_and_params(content_type)[0] == SIPFRAG


class Referral:
    """One REFER and its implicit subscription (sans-IO): feed it the REFER's final response
    and every NOTIFY of the subscription; `result` is set once the outcome is known.
    `listener` is called after every change."""

    def __init__(self, refer_cseq: int) -> None:
        self.cseq = refer_cseq
        self.accepted = False  # a 2xx came to the REFER
        self.subscribed = True  # until Subscription-State: terminated (or a refused REFER)
        self.progress: tuple[int, str] | None = None  # the last provisional status reported
        self.result: TransferResult | None = None
        self.listener: Callable[[], None] | None = None

    @property
    def waiting(self) -> bool:
        return self.result is None

    def matches(self, event: str | None) -> bool:
        """Whether a NOTIFY with this Event header belongs to our live subscription: package
        `refer`, and the `id` parameter (when present) is our REFER's CSeq (RFC 3515 2.4.6)."""
        if event is None or not self.subscribed:
            return False
        package, params = value_and_params(event)
        ident = params.get("id")
        return package == EVENT_PACKAGE and (ident is None or ident == str(self.cseq))

    def on_response(self, response: Response | None) -> None:
        """The REFER's final response; None when its transaction timed out (Timer F)."""
        if response is None:
            self.subscribed = False
            self._finish(False, None, "no response to the REFER")
        elif response.status < 300:
            self.accepted = True
            if (response.headers.get("Refer-Sub") or "").strip().lower() == "false":
                # RFC 4488: accepted, and no NOTIFY will ever say how it went.
                self.subscribed = False
                self._finish(True, None, "REFER accepted without a subscription (Refer-Sub)")
        else:
            self.subscribed = False
            self._finish(False, response.status,
                         f"REFER refused: {response.status} {response.reason}")
        self._changed()

    def on_notify(self, request: Request) -> int:
        """A NOTIFY in our dialog: the status to answer it with (481 when it is not about our
        live subscription, RFC 6665 4.1.3)."""
        if not self.matches(request.headers.get("Event")):
            return 481
        reported = sipfrag_status(request.body) if is_sipfrag(
            request.headers.get("Content-Type")) else None
        if reported is None:
            log.info("NOTIFY for REFER %d without a readable sipfrag status line", self.cseq)
        elif reported[0] < 200:
            self.progress = reported
        else:
            code, reason = reported
            self._finish(code < 300, code, f"the transferee's call to the target: {code} "
                                           f"{reason}".rstrip())
        state, params = value_and_params(request.headers.get("Subscription-State") or "active")
        if state == "terminated":
            self.subscribed = False
            why = params.get("reason") or "no reason given"
            self._finish(False, None, f"subscription terminated ({why}) before a final status")
        self._changed()
        return 200

    def give_up(self, detail: str) -> TransferResult:
        """No outcome in time: a failure (the call stays up); later NOTIFYs get 481."""
        self.subscribed = False
        if self.progress is not None:
            detail += f" (last reported: {' '.join(map(str, self.progress)).strip()})"
        self._finish(False, None, detail)
        assert self.result is not None
        return self.result

    def _finish(self, succeeded: bool, status: int | None, detail: str) -> None:
        if self.result is None:  # the first outcome stands
            self.result = TransferResult(succeeded, status, detail)

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener()


def build_refer(stack: Stack, dialog: Dialog, target: str) -> Request:
    """The in-dialog REFER: `target` is a SIP URI or a number / user resolved like a dial
    target (`Stack.target_uri`, which raises `CallError` for what it cannot call)."""
    refer_to = stack.target_uri(target)
    referred_by = parse_address(dialog.local_address).uri  # our identity in the call, no tag
    return dialog.new_request("REFER", stack.endpoint.via(), extra_headers=[
        ("Refer-To", f"<{refer_to}>"),
        ("Referred-By", f"<{referred_by}>"),
        ("Contact", stack.contact),  # REFER is a target refresh request
        ("Allow", ALLOW),
        ("User-Agent", stack.config.user_agent),
    ])


async def await_referral(
    stack: Stack, dialog: Dialog, refer: Request, referral: Referral, timeout: float
) -> TransferResult:
    """Send `refer` along the dialog's route set and wait, at most `timeout` seconds, for the
    outcome `referral` reports. Never raises for network faults: they are failed results."""
    changed = asyncio.Event()
    referral.listener = changed.set
    exchange: Exchange | None = None
    try:
        async with asyncio.timeout(timeout):
            destination = await stack.resolve(dialog.next_hop())
            exchange = stack.endpoint.send_request(refer, destination)
            if referral.waiting:
                referral.on_response(await exchange.final(timeout + 1))
            while referral.waiting:
                changed.clear()
                await changed.wait()
    except TimeoutError:
        what = "final NOTIFY" if referral.accepted else "answer to the REFER"
        referral.give_up(f"no {what} within {timeout:g} s")
    except CallError as exc:  # the next hop's name does not resolve
        referral.give_up(str(exc))
    finally:
        referral.listener = None
        if exchange is not None:
            stack.endpoint.forget(exchange)
    result = referral.result
    assert result is not None
    log.info("transfer on %s: %s", dialog.call_id, result)
    return result
