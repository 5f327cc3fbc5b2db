"""RFC 3261 §17 transactions (with RFC 6026 Accepted), driven by a fake clock."""

import pytest

from telephony.sip.errors import LocalProtocolError
from telephony.sip.message import Datagram, Request, Response, make_response, parse_message
from telephony.sip.transaction import (
    AckNeverCame,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    TimerConfig,
    TransactionLayer,
    TransactionTimedOut,
)

T1, T2, T4 = 0.5, 4.0, 5.0
TIMERS = TimerConfig(t1=T1, t2=T2, t4=T4)
TIMEOUT = 64 * T1
PROXY = ("192.0.2.1", 5060)
PEER = ("198.51.100.7", 5060)
NAT = ("203.0.113.9", 40123)


def message(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body


def parse_request(data: bytes) -> Request:
    parsed = parse_message(data)
    assert isinstance(parsed, Request)
    return parsed


def parse_response(data: bytes) -> Response:
    parsed = parse_message(data)
    assert isinstance(parsed, Response)
    return parsed


def outgoing(method: str = "INVITE", branch: str = "z9hG4bKout1", cseq: int = 1) -> Request:
    """A request we send through Kamailio, with a pre-loaded route set."""
    return parse_request(
        message(
            f"{method} sip:bob@192.0.2.20:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP 192.0.2.10:5062;branch={branch};rport",
            "Route: <sip:192.0.2.1;lr>, <sip:edge.example.com;lr>",
            "Route: <sip:core.example.com;lr>",
            "Max-Forwards: 70",
            'From: "Ringback" <sip:ringback@example.com>;tag=ourtag',
            "To: <sip:bob@example.com>",
            "Call-ID: call-1@192.0.2.10",
            f"CSeq: {cseq} {method}",
            "Contact: <sip:ringback@192.0.2.10:5062>",
        )
    )


def answer(request: Request, status: int, to_tag: str | None = "bobtag") -> Response:
    """The response as it comes back over the wire."""
    return parse_response(make_response(request, status, to_tag=to_tag).to_bytes())


def incoming(
    method: str = "INVITE",
    branch: str = "z9hG4bKin1",
    via: str = "SIP/2.0/UDP 198.51.100.7:5060;branch={branch}",
    cseq: int = 5,
    to_tag: str = "",
) -> Request:
    return parse_request(
        message(
            f"{method} sip:ringback@192.0.2.10:5062 SIP/2.0",
            "Via: " + via.format(branch=branch),
            "From: <sip:alice@example.com>;tag=alicetag",
            "To: <sip:ringback@example.com>" + (f";tag={to_tag}" if to_tag else ""),
            "Call-ID: in-1@198.51.100.7",
            f"CSeq: {cseq} {method}",
            "Contact: <sip:alice@198.51.100.7>",
        )
    )


def state(transaction: ClientTransaction | ServerTransaction) -> State:
    """Read afresh each time (mypy would otherwise keep the first narrowed value)."""
    return transaction.state


class Clock:
    """A fake clock driving a layer: every tick happens exactly at the next deadline."""

    def __init__(self, layer: TransactionLayer) -> None:
        self.layer = layer
        self.now = 0.0

    def advance(self) -> tuple[float, list[Event], list[Datagram]]:
        deadline = self.layer.next_deadline()
        assert deadline is not None
        assert deadline >= self.now
        self.now = deadline
        return deadline, self.layer.tick(deadline), self.layer.datagrams_to_send()

    def run_until_idle(self) -> list[tuple[float, list[Event], list[Datagram]]]:
        steps = []
        while self.layer.next_deadline() is not None:
            steps.append(self.advance())
            assert len(steps) < 1000
        return steps


@pytest.fixture
def layer() -> TransactionLayer:
    return TransactionLayer(TIMERS)


def test_timer_config_defaults() -> None:
    config = TimerConfig()
    assert (config.t1, config.t2, config.t4, config.timeout) == (0.5, 4.0, 5.0, 32.0)


# --- INVITE client transaction -------------------------------------------------------------------


def test_invite_client_timer_a_doubles_and_timer_b_times_out(layer: TransactionLayer) -> None:
    invite = outgoing()
    transaction = layer.send_request(invite, PROXY, 0.0)
    first = layer.datagrams_to_send()
    assert first == [Datagram(invite.to_bytes(), PROXY)]
    assert state(transaction) is State.CALLING
    assert layer.next_deadline() == T1

    steps = Clock(layer).run_until_idle()
    retransmissions = [(at, d) for at, _, datagrams in steps for d in datagrams]
    assert [at for at, _ in retransmissions] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(d == first[0] for _, d in retransmissions)
    at, events, datagrams = steps[-1]
    assert at == TIMEOUT
    assert events == [TransactionTimedOut(transaction)]
    assert datagrams == []
    assert transaction.terminated
    assert len(layer) == 0


def test_tick_before_a_deadline_does_nothing(layer: TransactionLayer) -> None:
    layer.send_request(outgoing(), PROXY, 10.0)
    layer.datagrams_to_send()
    assert layer.tick(10.49) == []
    assert layer.datagrams_to_send() == []
    assert layer.next_deadline() == 10.5


def test_late_tick_retransmits_once_and_restarts_from_now(layer: TransactionLayer) -> None:
    layer.send_request(outgoing(), PROXY, 0.0)
    layer.datagrams_to_send()
    assert layer.tick(1.2) == []
    assert len(layer.datagrams_to_send()) == 1
    assert layer.next_deadline() == 1.2 + 2 * T1


def test_provisional_stops_retransmission_and_timer_b(layer: TransactionLayer) -> None:
    invite = outgoing()
    transaction = layer.send_request(invite, PROXY, 0.0)
    layer.datagrams_to_send()
    layer.tick(0.5)  # one retransmission before the 100 arrives
    assert len(layer.datagrams_to_send()) == 1

    trying = answer(invite, 100, to_tag=None)
    assert layer.receive(trying, PROXY, 0.7) == [ResponseReceived(trying, transaction)]
    assert state(transaction) is State.PROCEEDING
    assert layer.next_deadline() is None  # A stopped, and B only runs in Calling
    assert layer.tick(1000.0) == []
    assert layer.datagrams_to_send() == []

    ringing = answer(invite, 180)
    assert layer.receive(ringing, PROXY, 1000.0) == [ResponseReceived(ringing, transaction)]
    assert state(transaction) is State.PROCEEDING
    assert len(layer) == 1


def test_non_2xx_final_is_acked_by_the_transaction(layer: TransactionLayer) -> None:
    invite = outgoing()
    transaction = layer.send_request(invite, PROXY, 0.0)
    layer.datagrams_to_send()
    layer.receive(answer(invite, 180), PROXY, 0.1)

    busy = answer(invite, 486)
    assert layer.receive(busy, PROXY, 2.0) == [ResponseReceived(busy, transaction)]
    assert state(transaction) is State.COMPLETED
    assert transaction.final_response is busy
    [datagram] = layer.datagrams_to_send()
    assert datagram.address == PROXY
    ack = parse_request(datagram.data)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.headers.get_all("Via") == [invite.headers.get("Via")]  # top Via: same branch
    assert ack.top_via.branch == "z9hG4bKout1"
    assert ack.headers.get_all("Route") == [
        "<sip:192.0.2.1;lr>",
        "<sip:edge.example.com;lr>",
        "<sip:core.example.com;lr>",
    ]
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.to_address.tag == "bobtag"
    assert ack.to_address.uri == invite.to_address.uri
    assert ack.call_id == invite.call_id
    assert ack.cseq == (1, "ACK")
    assert ack.headers.get("Max-Forwards") == "70"
    assert ack.body == b""
    assert layer.next_deadline() == 2.0 + 32.0  # Timer D: at least 32 s over UDP

    # The 486 retransmitted (our ACK got lost): ACK again, do not bother the TU.
    for now in (2.5, 3.5):
        assert layer.receive(busy, PROXY, now) == []
        assert [parse_request(d.data).method for d in layer.datagrams_to_send()] == ["ACK"]
    assert layer.next_deadline() == 34.0

    assert layer.tick(34.0) == []
    assert transaction.terminated
    assert len(layer) == 0
    assert layer.receive(busy, PROXY, 35.0) == []  # a stray non-2xx is dropped
    assert layer.datagrams_to_send() == []


def test_non_2xx_straight_from_calling(layer: TransactionLayer) -> None:
    invite = outgoing()
    transaction = layer.send_request(invite, PROXY, 0.0)
    layer.datagrams_to_send()
    unavailable = answer(invite, 503)
    assert layer.receive(unavailable, PROXY, 0.2) == [ResponseReceived(unavailable, transaction)]
    assert len(layer.datagrams_to_send()) == 1  # the ACK, and no more INVITE retransmissions
    assert layer.next_deadline() == 32.2


def test_2xx_moves_to_accepted_and_is_passed_up_every_time(layer: TransactionLayer) -> None:
    invite = outgoing()
    transaction = layer.send_request(invite, PROXY, 0.0)
    layer.datagrams_to_send()
    layer.receive(answer(invite, 180), PROXY, 0.3)

    ok = answer(invite, 200)
    assert layer.receive(ok, PROXY, 4.0) == [ResponseReceived(ok, transaction)]
    assert state(transaction) is State.ACCEPTED
    assert layer.datagrams_to_send() == []  # the TU acknowledges a 2xx itself
    assert layer.next_deadline() == 4.0 + TIMEOUT  # Timer M

    # Retransmitted 2xx, and a 2xx from another fork: each goes to the TU (RFC 6026 8.4).
    forked = answer(invite, 200, to_tag="forktag")
    assert layer.receive(ok, PROXY, 5.0) == [ResponseReceived(ok, transaction)]
    assert layer.receive(forked, PROXY, 6.0) == [ResponseReceived(forked, transaction)]
    # Anything else in Accepted is absorbed.
    assert layer.receive(answer(invite, 180), PROXY, 6.5) == []
    assert layer.receive(answer(invite, 486), PROXY, 7.0) == []
    assert layer.datagrams_to_send() == []

    assert layer.tick(4.0 + TIMEOUT) == []
    assert transaction.terminated
    assert len(layer) == 0
    # After Timer M, a 2xx retransmission still reaches the TU, without a transaction.
    assert layer.receive(ok, PROXY, 40.0) == [ResponseReceived(ok, None)]


def test_responses_match_on_branch_and_method(layer: TransactionLayer) -> None:
    invite = outgoing()
    cancel = outgoing("CANCEL")  # a CANCEL shares the INVITE's branch (RFC 3261 9.1)
    invite_tx = layer.send_request(invite, PROXY, 0.0)
    layer.receive(answer(invite, 180), PROXY, 0.1)
    cancel_tx = layer.send_request(cancel, PROXY, 1.0)
    assert len(layer) == 2

    cancelled = answer(cancel, 200)
    assert layer.receive(cancelled, PROXY, 1.1) == [ResponseReceived(cancelled, cancel_tx)]
    assert state(invite_tx) is State.PROCEEDING
    terminated = answer(invite, 487)
    assert layer.receive(terminated, PROXY, 1.2) == [ResponseReceived(terminated, invite_tx)]
    assert state(cancel_tx) is State.COMPLETED

    other = parse_response(answer(invite, 200).to_bytes().replace(b"z9hG4bKout1", b"z9hG4bKzzz"))
    assert layer.receive(other, PROXY, 1.3) == [ResponseReceived(other, None)]  # stray 2xx
    stray = parse_response(answer(cancel, 200).to_bytes().replace(b"z9hG4bKout1", b"z9hG4bKzzz"))
    assert layer.receive(stray, PROXY, 1.3) == []


# --- non-INVITE client transaction ---------------------------------------------------------------


def test_non_invite_timer_e_is_capped_at_t2_then_timer_f(layer: TransactionLayer) -> None:
    options = outgoing("OPTIONS")
    transaction = layer.send_request(options, PROXY, 0.0)
    assert state(transaction) is State.TRYING
    assert len(layer.datagrams_to_send()) == 1

    steps = Clock(layer).run_until_idle()
    times = [at for at, _, datagrams in steps for _ in datagrams]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert steps[-1][0] == TIMEOUT
    assert steps[-1][1] == [TransactionTimedOut(transaction)]
    assert len(layer) == 0


def test_non_invite_provisional_retransmits_every_t2(layer: TransactionLayer) -> None:
    bye = outgoing("BYE", cseq=2)
    transaction = layer.send_request(bye, PROXY, 0.0)
    layer.datagrams_to_send()
    trying = answer(bye, 100, to_tag=None)
    assert layer.receive(trying, PROXY, 0.2) == [ResponseReceived(trying, transaction)]
    assert state(transaction) is State.PROCEEDING
    assert layer.next_deadline() == 0.5  # Timer E keeps running in Proceeding

    steps = Clock(layer).run_until_idle()
    times = [at for at, _, datagrams in steps for _ in datagrams]
    assert times == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert steps[-1][1] == [TransactionTimedOut(transaction)]  # Timer F fires in Proceeding too


def test_non_invite_final_then_timer_k(layer: TransactionLayer) -> None:
    bye = outgoing("BYE", cseq=2)
    transaction = layer.send_request(bye, PROXY, 0.0)
    layer.datagrams_to_send()
    ok = answer(bye, 200)
    assert layer.receive(ok, PROXY, 0.7) == [ResponseReceived(ok, transaction)]
    assert state(transaction) is State.COMPLETED
    assert transaction.final_response is ok
    assert layer.next_deadline() == 0.7 + T4  # Timer K
    assert layer.receive(ok, PROXY, 1.0) == []  # retransmitted final absorbed
    assert layer.receive(answer(bye, 100, to_tag=None), PROXY, 1.1) == []
    assert layer.tick(5.0) == []
    assert layer.datagrams_to_send() == []  # no retransmission in Completed
    assert layer.tick(5.7) == []
    assert transaction.terminated
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_non_invite_2xx_is_not_a_stray_after_the_transaction(layer: TransactionLayer) -> None:
    bye = outgoing("BYE", cseq=2)
    layer.send_request(bye, PROXY, 0.0)
    layer.receive(answer(bye, 200), PROXY, 0.1)
    layer.tick(100.0)
    assert layer.receive(answer(bye, 200), PROXY, 101.0) == []


# --- sending rules -------------------------------------------------------------------------------


def test_ack_has_no_client_transaction(layer: TransactionLayer) -> None:
    with pytest.raises(LocalProtocolError):
        layer.send_request(outgoing("ACK"), PROXY, 0.0)
    assert layer.datagrams_to_send() == []
    layer.send_stateless(b"ACK ...", PEER)
    assert layer.datagrams_to_send() == [Datagram(b"ACK ...", PEER)]
    assert layer.datagrams_to_send() == []


def test_a_branch_in_use_is_refused_before_anything_is_sent(layer: TransactionLayer) -> None:
    first = layer.send_request(outgoing(), PROXY, 0.0)
    layer.datagrams_to_send()
    with pytest.raises(LocalProtocolError):
        layer.send_request(outgoing(), PEER, 0.1)
    assert layer.datagrams_to_send() == []
    assert len(layer) == 1
    assert layer.next_deadline() == T1
    layer.send_request(outgoing("OPTIONS"), PROXY, 0.2)  # same branch, other method: allowed
    assert len(layer) == 2
    assert state(first) is State.CALLING


def test_abandon_forgets_the_transaction_and_its_timers(layer: TransactionLayer) -> None:
    calling = layer.send_request(outgoing(branch="z9hG4bKa"), PROXY, 0.0)
    proceeding = layer.send_request(outgoing(branch="z9hG4bKb"), PROXY, 0.0)
    layer.receive(answer(proceeding.request, 180), PROXY, 0.1)
    options = layer.send_request(outgoing("OPTIONS", branch="z9hG4bKc"), PROXY, 0.3)
    layer.datagrams_to_send()
    assert layer.next_deadline() == 0.5

    layer.abandon(calling)
    assert calling.terminated
    assert layer.next_deadline() == 0.8  # the OPTIONS's Timer E, not the abandoned INVITE's A
    layer.abandon(proceeding)
    assert len(layer) == 1
    assert layer.tick(0.5) == []
    assert layer.datagrams_to_send() == []

    layer.abandon(options)
    assert len(layer) == 0
    assert layer.next_deadline() is None
    assert layer.tick(100.0) == []
    assert layer.datagrams_to_send() == []
    late = answer(calling.request, 487)
    assert layer.receive(late, PROXY, 100.0) == []
    ok = answer(proceeding.request, 200)
    assert layer.receive(ok, PROXY, 100.0) == [ResponseReceived(ok, None)]


def test_next_deadline_is_the_earliest_of_all_transactions(layer: TransactionLayer) -> None:
    invite = layer.send_request(outgoing(branch="z9hG4bK1"), PROXY, 0.0)
    bye = layer.send_request(outgoing("BYE", branch="z9hG4bK2", cseq=2), PROXY, 0.2)
    assert layer.next_deadline() == 0.5
    layer.receive(answer(invite.request, 180), PROXY, 0.3)
    assert layer.next_deadline() == 0.7  # the INVITE's Timer A is gone; the BYE's E remains
    layer.receive(answer(bye.request, 200), PROXY, 0.4)
    assert layer.next_deadline() == 0.4 + T4  # Timer K
    layer.tick(5.4)
    assert layer.next_deadline() is None
    assert len(layer) == 1  # the INVITE still waits for its final response


# --- INVITE server transaction -------------------------------------------------------------------


def test_invite_server_proceeding_repeats_the_last_provisional(layer: TransactionLayer) -> None:
    invite = incoming()
    [event] = layer.receive(invite, PEER, 0.0)
    assert isinstance(event, RequestReceived)
    assert (event.request, event.source) == (invite, PEER)
    transaction = event.transaction
    assert isinstance(transaction, ServerTransaction)
    assert state(transaction) is State.PROCEEDING
    assert layer.find_server(invite) is transaction
    assert layer.datagrams_to_send() == []
    assert layer.next_deadline() is None

    assert layer.receive(invite, PEER, 0.5) == []  # nothing to repeat yet
    assert layer.datagrams_to_send() == []

    trying = make_response(invite, 100)
    layer.respond(transaction, trying, 0.6)
    ringing = make_response(invite, 180, to_tag="ourtag")
    layer.respond(transaction, ringing, 0.7)
    sent = layer.datagrams_to_send()
    assert [parse_response(d.data).status for d in sent] == [100, 180]
    assert all(d.address == PEER for d in sent)
    assert transaction.last_response is ringing

    assert layer.receive(invite, PEER, 1.5) == []
    assert layer.datagrams_to_send() == [Datagram(ringing.to_bytes(), PEER)]
    assert layer.next_deadline() is None  # provisional responses are not retransmitted


def test_invite_server_2xx_goes_to_accepted(layer: TransactionLayer) -> None:
    invite = incoming()
    [event] = layer.receive(invite, PEER, 0.0)
    transaction = event.transaction
    assert isinstance(transaction, ServerTransaction)
    ok = make_response(invite, 200, to_tag="ourtag")
    layer.respond(transaction, ok, 1.0)
    assert layer.datagrams_to_send() == [Datagram(ok.to_bytes(), PEER)]
    assert state(transaction) is State.ACCEPTED
    assert layer.next_deadline() == 1.0 + TIMEOUT  # Timer L

    # INVITE retransmissions are absorbed; 2xx retransmission is the TU's job (RFC 6026 8.5).
    assert layer.receive(invite, PEER, 1.5) == []
    assert layer.datagrams_to_send() == []
    layer.respond(transaction, ok, 1.5)
    assert layer.datagrams_to_send() == [Datagram(ok.to_bytes(), PEER)]
    assert state(transaction) is State.ACCEPTED
    with pytest.raises(LocalProtocolError):
        layer.respond(transaction, make_response(invite, 486, to_tag="ourtag"), 1.6)
    with pytest.raises(LocalProtocolError):
        layer.respond(transaction, make_response(invite, 180, to_tag="ourtag"), 1.6)

    # The ACK for a 2xx has its own branch: no transaction, straight to the TU.
    ack = incoming("ACK", branch="z9hG4bKack2xx", cseq=5, to_tag="ourtag")
    assert layer.receive(ack, PEER, 2.0) == [RequestReceived(ack, PEER, None)]
    # An old-fashioned ACK reusing the INVITE's branch is passed up as well.
    same_branch_ack = incoming("ACK", cseq=5, to_tag="ourtag")
    assert layer.receive(same_branch_ack, PEER, 2.1) == [
        RequestReceived(same_branch_ack, PEER, None)
    ]
    assert state(transaction) is State.ACCEPTED

    assert layer.tick(1.0 + TIMEOUT) == []
    assert transaction.terminated
    assert len(layer) == 0


def test_invite_server_non_2xx_retransmits_with_timer_g_until_h(layer: TransactionLayer) -> None:
    invite = incoming()
    [event] = layer.receive(invite, PEER, 0.0)
    transaction = event.transaction
    assert isinstance(transaction, ServerTransaction)
    busy = make_response(invite, 486, to_tag="ourtag")
    layer.respond(transaction, busy, 0.0)
    assert layer.datagrams_to_send() == [Datagram(busy.to_bytes(), PEER)]
    assert state(transaction) is State.COMPLETED

    steps = Clock(layer).run_until_idle()
    times = [at for at, _, datagrams in steps for _ in datagrams]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(d.data == busy.to_bytes() for _, _, ds in steps for d in ds)
    assert steps[-1][0] == TIMEOUT
    assert steps[-1][1] == [AckNeverCame(transaction)]
    assert transaction.terminated
    assert len(layer) == 0


def test_invite_server_ack_confirms_then_timer_i(layer: TransactionLayer) -> None:
    invite = incoming()
    [event] = layer.receive(invite, PEER, 0.0)
    transaction = event.transaction
    assert isinstance(transaction, ServerTransaction)
    layer.respond(transaction, make_response(invite, 100), 0.0)
    declined = make_response(invite, 603, to_tag="ourtag")
    layer.respond(transaction, declined, 1.0)
    layer.datagrams_to_send()

    assert layer.receive(invite, PEER, 1.2) == []  # INVITE retransmitted: repeat the 603
    assert layer.datagrams_to_send() == [Datagram(declined.to_bytes(), PEER)]
    assert layer.tick(1.5) == []  # Timer G
    assert len(layer.datagrams_to_send()) == 1
    with pytest.raises(LocalProtocolError):
        layer.respond(transaction, make_response(invite, 500), 1.6)

    ack = incoming("ACK", cseq=5, to_tag="ourtag")  # same branch: part of the transaction
    assert layer.receive(ack, PEER, 1.7) == []
    assert state(transaction) is State.CONFIRMED
    assert layer.next_deadline() == 1.7 + T4  # Timer I; G and H are gone
    assert layer.receive(ack, PEER, 2.0) == []  # ACK retransmissions absorbed
    assert layer.receive(invite, PEER, 2.1) == []
    assert layer.datagrams_to_send() == []
    assert layer.tick(1.7 + T4) == []
    assert transaction.terminated
    assert len(layer) == 0


def test_stray_ack_has_no_transaction(layer: TransactionLayer) -> None:
    ack = incoming("ACK", branch="z9hG4bKnobody", to_tag="x")
    assert layer.receive(ack, PEER, 0.0) == [RequestReceived(ack, PEER, None)]
    assert len(layer) == 0
    assert layer.datagrams_to_send() == []


def test_cancel_matches_the_invite_server_transaction(layer: TransactionLayer) -> None:
    invite = incoming()
    [invite_event] = layer.receive(invite, PEER, 0.0)
    invite_tx = invite_event.transaction
    assert isinstance(invite_tx, ServerTransaction)
    layer.respond(invite_tx, make_response(invite, 180, to_tag="ourtag"), 0.1)

    cancel = incoming("CANCEL")  # same branch, same CSeq number, method CANCEL
    [cancel_event] = layer.receive(cancel, PEER, 1.0)
    assert isinstance(cancel_event, RequestReceived)
    cancel_tx = cancel_event.transaction
    assert isinstance(cancel_tx, ServerTransaction)
    assert cancel_tx is not invite_tx
    assert layer.find_server(cancel) is invite_tx  # RFC 3261 9.2
    assert len(layer) == 2

    layer.respond(cancel_tx, make_response(cancel, 200, to_tag="ourtag"), 1.0)
    layer.respond(invite_tx, make_response(invite, 487, to_tag="ourtag"), 1.0)
    sent = [parse_response(d.data) for d in layer.datagrams_to_send()]
    assert [(r.status, r.cseq) for r in sent] == [
        (180, (5, "INVITE")),
        (200, (5, "CANCEL")),
        (487, (5, "INVITE")),
    ]
    assert layer.receive(cancel, PEER, 1.1) == []  # retransmitted CANCEL: repeat its 200
    assert [parse_response(d.data).cseq for d in layer.datagrams_to_send()] == [(5, "CANCEL")]

    ack = incoming("ACK", cseq=5, to_tag="ourtag")
    assert layer.receive(ack, PEER, 1.2) == []
    assert state(invite_tx) is State.CONFIRMED

    unknown = incoming("CANCEL", branch="z9hG4bKunknown")
    assert layer.find_server(unknown) is None


def test_same_branch_from_another_sent_by_is_another_transaction(layer: TransactionLayer) -> None:
    first = incoming()
    second = incoming(via="SIP/2.0/UDP 198.51.100.8:5060;branch={branch}")
    [a] = layer.receive(first, PEER, 0.0)
    [b] = layer.receive(second, ("198.51.100.8", 5060), 0.0)
    assert isinstance(a, RequestReceived)
    assert isinstance(b, RequestReceived)
    assert a.transaction is not None
    assert b.transaction is not None
    assert a.transaction is not b.transaction
    assert len(layer) == 2


# --- non-INVITE server transaction ---------------------------------------------------------------


def test_non_invite_server_absorbs_then_repeats_then_timer_j(layer: TransactionLayer) -> None:
    bye = incoming("BYE", cseq=6, to_tag="ourtag")
    [event] = layer.receive(bye, PEER, 0.0)
    transaction = event.transaction
    assert isinstance(transaction, ServerTransaction)
    assert state(transaction) is State.TRYING
    assert layer.receive(bye, PEER, 0.5) == []  # Trying: retransmission discarded
    assert layer.datagrams_to_send() == []

    ok = make_response(bye, 200)
    layer.respond(transaction, ok, 1.0)
    assert layer.datagrams_to_send() == [Datagram(ok.to_bytes(), PEER)]
    assert state(transaction) is State.COMPLETED
    assert layer.next_deadline() == 1.0 + TIMEOUT  # Timer J
    assert layer.receive(bye, PEER, 1.5) == []
    assert layer.datagrams_to_send() == [Datagram(ok.to_bytes(), PEER)]
    with pytest.raises(LocalProtocolError):
        layer.respond(transaction, make_response(bye, 500), 2.0)

    assert layer.tick(1.0 + TIMEOUT - 0.01) == []
    assert len(layer) == 1
    assert layer.tick(1.0 + TIMEOUT) == []
    assert transaction.terminated
    assert len(layer) == 0
    assert layer.datagrams_to_send() == []


def test_non_invite_server_proceeding_repeats_the_provisional(layer: TransactionLayer) -> None:
    info = incoming("INFO", cseq=7, to_tag="ourtag")
    [event] = layer.receive(info, PEER, 0.0)
    transaction = event.transaction
    assert isinstance(transaction, ServerTransaction)
    trying = make_response(info, 100)
    layer.respond(transaction, trying, 0.1)
    assert state(transaction) is State.PROCEEDING
    layer.datagrams_to_send()
    assert layer.receive(info, PEER, 0.5) == []
    assert layer.datagrams_to_send() == [Datagram(trying.to_bytes(), PEER)]
    layer.respond(transaction, make_response(info, 200), 0.6)
    assert state(transaction) is State.COMPLETED


# --- where responses go --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("via", "source", "destination"),
    [
        # RFC 3581: rport asks for the source address and port (a NAT's mapping).
        ("SIP/2.0/UDP 10.0.0.5:5060;rport;branch={branch}", NAT, NAT),
        ("SIP/2.0/UDP 10.0.0.5:5060;branch={branch};rport=40123;received=203.0.113.9", NAT, NAT),
        # RFC 3261 18.2.2: received with the sent-by port, 5060 when none.
        (
            "SIP/2.0/UDP 10.0.0.5:5070;received=203.0.113.9;branch={branch}",
            NAT,
            ("203.0.113.9", 5070),
        ),
        ("SIP/2.0/UDP 10.0.0.5;received=203.0.113.9;branch={branch}", NAT, ("203.0.113.9", 5060)),
        # A `received` the sender wrote itself is not trusted: the answer goes to the source.
        (
            "SIP/2.0/UDP 10.0.0.5:5070;received=192.0.2.66;branch={branch}",
            NAT,
            (NAT[0], 5070),
        ),
        (
            "SIP/2.0/UDP 198.51.100.7:5080;branch={branch}",
            ("198.51.100.7", 5080),
            ("198.51.100.7", 5080),
        ),
        (
            "SIP/2.0/UDP 198.51.100.7;branch={branch}",
            ("198.51.100.7", 33333),
            ("198.51.100.7", 5060),
        ),
        (
            "SIP/2.0/UDP [2001:db8::5]:5062;branch={branch}",
            ("2001:db8::5", 5062),
            ("2001:db8::5", 5062),
        ),
    ],
)
def test_responses_follow_the_top_via(
    layer: TransactionLayer, via: str, source: tuple[str, int], destination: tuple[str, int]
) -> None:
    options = incoming("OPTIONS", via=via, cseq=1)
    [event] = layer.receive(options, source, 0.0)
    assert isinstance(event, RequestReceived)
    assert event.transaction is not None
    assert event.transaction.reply_to == destination
    layer.respond(event.transaction, make_response(options, 200), 0.0)
    [datagram] = layer.datagrams_to_send()
    assert datagram.address == destination


# --- a whole call through two layers -------------------------------------------------------------


def test_two_layers_talk_to_each_other() -> None:
    """A caller and a callee layer joined back to back: ringing, busy, ACK, everyone gone."""
    caller, callee = TransactionLayer(TIMERS), TransactionLayer(TIMERS)
    caller_addr, callee_addr = ("192.0.2.10", 5062), ("192.0.2.20", 5060)
    invite = outgoing()
    invite.headers.remove("Route")
    client = caller.send_request(invite, callee_addr, 0.0)

    def deliver(
        frm: TransactionLayer, source: tuple[str, int], to: TransactionLayer, now: float
    ) -> list[Event]:
        events: list[Event] = []
        for datagram in frm.datagrams_to_send():
            events += to.receive(parse_message(datagram.data), source, now)
        return events

    [arrived] = deliver(caller, caller_addr, callee, 0.01)
    assert isinstance(arrived, RequestReceived)
    server = arrived.transaction
    assert isinstance(server, ServerTransaction)
    assert server.reply_to == caller_addr  # rport in our Via
    callee.respond(server, make_response(arrived.request, 180, to_tag="callee"), 0.02)
    [ringing] = deliver(callee, callee_addr, caller, 0.03)
    assert isinstance(ringing, ResponseReceived)
    assert ringing.response.status == 180
    callee.respond(server, make_response(arrived.request, 486, to_tag="callee"), 1.0)
    [busy] = deliver(callee, callee_addr, caller, 1.01)
    assert isinstance(busy, ResponseReceived)
    assert busy.transaction is client
    assert deliver(caller, caller_addr, callee, 1.02) == []  # the ACK is absorbed
    assert state(server) is State.CONFIRMED
    assert state(client) is State.COMPLETED
    assert isinstance(client, ClientTransaction)
    caller.tick(100.0)
    callee.tick(100.0)
    assert len(caller) == len(callee) == 0
