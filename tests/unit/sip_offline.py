"""A SipUserAgent whose socket is never opened: the test plays the far end, feeding datagrams to
the endpoint and reading what the engine sent (the endpoint's tracer sees every datagram out).
Every BYE the engine sends is answered 200 at once."""

import asyncio

from telephony.sip.config import EngineConfig, SipAccount
from telephony.sip.message import Message, Request, Response, make_response, parse_message
from telephony.sip.transaction import TimerConfig
from telephony.sip.ua import SipUserAgent

FAST_TIMERS = TimerConfig(t1=0.01, t2=0.04, t4=0.05)
FAR_END = ("192.0.2.7", 5060)
GUARD_S = 10.0  # a bound on every wait: never an assertion about time


def sip(*lines: str, body: bytes = b"") -> bytes:
    head = [*lines, *(["Content-Type: application/sdp"] if body else []),
            f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def sdp(direction: str = "sendrecv", *, address: str = FAR_END[0], version: int = 1) -> bytes:
    return "\r\n".join([
        "v=0", f"o=far 1 {version} IN IP4 {FAR_END[0]}", "s=-", f"c=IN IP4 {address}", "t=0 0",
        "m=audio 6000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", f"a={direction}", "",
    ]).encode()


def invite(n: int, body: bytes = b"") -> bytes:
    return sip(
        "INVITE sip:ringback@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP {FAR_END[0]}:{FAR_END[1]};branch=z9hG4bK-call{n}",
        "Max-Forwards: 70",
        f"From: <sip:caller@{FAR_END[0]}>;tag=from{n}",
        "To: <sip:ringback@127.0.0.1>",
        f"Call-ID: call-{n}@{FAR_END[0]}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:caller@{FAR_END[0]}:{FAR_END[1]}>",
        body=body,
    )


def cancel(n: int) -> bytes:
    return sip(
        "CANCEL sip:ringback@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP {FAR_END[0]}:{FAR_END[1]};branch=z9hG4bK-call{n}",
        "Max-Forwards: 70",
        f"From: <sip:caller@{FAR_END[0]}>;tag=from{n}",
        "To: <sip:ringback@127.0.0.1>",
        f"Call-ID: call-{n}@{FAR_END[0]}",
        "CSeq: 1 CANCEL",
    )


def parse_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


class OfflineUa:
    def __init__(self, max_pending_incoming: int = 64) -> None:
        config = EngineConfig(sip_port=5060, timers=FAST_TIMERS,
                              max_pending_incoming=max_pending_incoming)
        self.ua = SipUserAgent(SipAccount(user="ringback"), config)
        self.sent: list[Message] = []
        self.ua.endpoint.tracer = self._trace

    def feed(self, data: bytes) -> None:
        self.ua.endpoint.datagram_received(data, FAR_END)

    def responses(self, call_id: str, method: str = "INVITE") -> list[Response]:
        return [m for m in self.sent if isinstance(m, Response) and m.call_id == call_id
                and m.cseq[1] == method]

    def statuses(self, call_id: str, method: str = "INVITE") -> list[int]:
        return [response.status for response in self.responses(call_id, method)]

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.sent if isinstance(m, Request) and m.method == method]

    async def wait_request(self, method: str) -> Request:
        """The latest request of `method` the engine sent, once there is one."""
        async with asyncio.timeout(GUARD_S):
            while True:
                if sent := self.requests(method):
                    return sent[-1]
                await asyncio.sleep(0.005)

    async def final(self, call_id: str) -> Response:
        """The final response to the INVITE of `call_id`, once the engine sent it."""
        async with asyncio.timeout(GUARD_S):
            while True:
                finals = [r for r in self.responses(call_id) if r.status >= 200]
                if finals:
                    return finals[0]
                await asyncio.sleep(0.005)

    def _trace(self, direction: str, data: bytes, _address: tuple[str, int]) -> None:
        if direction != "out":
            return
        message = parse_message(data)
        self.sent.append(message)
        if isinstance(message, Request) and message.method == "BYE":
            answer = make_response(message, 200).to_bytes()
            asyncio.get_running_loop().call_soon(self.feed, answer)
