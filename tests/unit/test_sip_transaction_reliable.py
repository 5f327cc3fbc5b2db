"""Transactions over a reliable transport (RFC 3261 17 for TCP), `received`/`rport` (RFC 3581),
and what a failed connection does to the transactions waiting on it."""

from telephony.sip.message import make_response, parse_message
from telephony.sip.transaction import (
    RequestReceived,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTimedOut,
)
from tests.unit.test_sip_transaction import (
    NAT,
    PEER,
    PROXY,
    TIMEOUT,
    TIMERS,
    Clock,
    answer,
    incoming,
    outgoing,
    parse_request,
)


def server(layer: TransactionLayer, method: str, source: tuple[str, int], *, reliable: bool,
           via: str = "SIP/2.0/TCP 198.51.100.7:5060;branch={branch}") -> ServerTransaction:
    [event] = layer.receive(incoming(method, via=via, cseq=1), source, 0.0, reliable=reliable)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    return event.transaction


def test_reliable_invite_is_sent_once_and_only_timer_b_runs() -> None:
    layer = TransactionLayer(TIMERS)
    client = layer.send_request(outgoing(), PROXY, 0.0, reliable=True)
    assert len(layer.datagrams_to_send()) == 1
    steps = Clock(layer).run_until_idle()
    assert [(at, [type(e) for e in events], sent) for at, events, sent in steps] == [
        (TIMEOUT, [TransactionTimedOut], [])
    ]
    assert client.terminated


def test_reliable_invite_non_2xx_is_acked_and_gone_at_once() -> None:
    layer = TransactionLayer(TIMERS)
    invite = outgoing()
    client = layer.send_request(invite, PROXY, 0.0, reliable=True)
    layer.datagrams_to_send()
    layer.receive(answer(invite, 486), PROXY, 1.0)
    [ack] = layer.datagrams_to_send()
    assert parse_request(ack.data).method == "ACK"
    assert layer.next_deadline() == 1.0  # Timer D is zero
    layer.tick(1.0)
    assert client.terminated and len(layer) == 0


def test_reliable_non_invite_final_ends_the_transaction_at_once() -> None:
    layer = TransactionLayer(TIMERS)
    register = outgoing("REGISTER")
    client = layer.send_request(register, PROXY, 0.0, reliable=True)
    layer.datagrams_to_send()
    assert layer.next_deadline() == TIMEOUT  # Timer F only, no Timer E
    layer.receive(answer(register, 200), PROXY, 0.2)
    assert layer.next_deadline() == 0.2  # Timer K is zero
    layer.tick(0.2)
    assert client.terminated


def test_reliable_invite_server_sends_its_final_once_and_waits_for_the_ack() -> None:
    layer = TransactionLayer(TIMERS)
    transaction = server(layer, "INVITE", NAT, reliable=True)
    assert transaction.reply_to == NAT  # the connection it came on, whatever the Via says
    layer.respond(transaction, make_response(transaction.request, 486, to_tag="t"), 0.0)
    assert len(layer.datagrams_to_send()) == 1
    assert layer.next_deadline() == TIMEOUT  # Timer H, and no Timer G
    layer.receive(incoming("ACK", cseq=1, to_tag="t",
                           via="SIP/2.0/TCP 198.51.100.7:5060;branch={branch}"), NAT, 1.0,
                  reliable=True)
    assert transaction.state is State.CONFIRMED
    assert layer.next_deadline() == 1.0  # Timer I is zero
    layer.tick(1.0)
    assert transaction.terminated and layer.datagrams_to_send() == []


def test_reliable_non_invite_server_forgets_at_once() -> None:
    layer = TransactionLayer(TIMERS)
    transaction = server(layer, "OPTIONS", NAT, reliable=True)
    layer.respond(transaction, make_response(transaction.request, 200), 0.0)
    assert layer.next_deadline() == 0.0  # Timer J is zero
    layer.tick(0.0)
    assert transaction.terminated


def test_unreliable_responses_carry_received_and_rport() -> None:
    layer = TransactionLayer(TIMERS)
    transaction = server(layer, "OPTIONS", NAT, reliable=False,
                         via="SIP/2.0/UDP 10.0.0.5:5070;branch={branch};rport")
    layer.respond(transaction, make_response(transaction.request, 200), 0.0)
    [datagram] = layer.datagrams_to_send()
    assert datagram.address == NAT
    via = parse_message(datagram.data).top_via
    assert via.params["received"] == NAT[0] and via.params["rport"] == str(NAT[1])


def test_received_only_when_the_host_differs() -> None:
    layer = TransactionLayer(TIMERS)
    same = server(layer, "OPTIONS", PEER, reliable=False,
                  via="SIP/2.0/UDP 198.51.100.7:5060;branch={branch}")
    assert "received" not in same.request.top_via.params
    other = server(layer, "INFO", NAT, reliable=False,
                   via="SIP/2.0/UDP 10.0.0.5:5070;branch={branch}")
    assert other.request.top_via.params["received"] == NAT[0]
    assert "rport" not in other.request.top_via.params


def test_a_failed_connection_times_out_what_had_to_go_over_it() -> None:
    layer = TransactionLayer(TIMERS)
    client = layer.send_request(outgoing(), PROXY, 0.0, reliable=True)
    layer.datagrams_to_send()
    [event] = layer.transport_failed(PROXY, 1.0)
    assert event == TransactionTimedOut(client)
    assert client.terminated and layer.next_deadline() is None


def test_a_large_request_falls_back_to_udp_with_retransmissions() -> None:
    layer = TransactionLayer(TIMERS)
    client = layer.send_request(outgoing(), PROXY, 0.0, reliable=True, udp_fallback=True)
    [first] = layer.datagrams_to_send()
    assert layer.transport_failed(PROXY, 1.0) == []
    [again] = layer.datagrams_to_send()
    assert again == first and not client.reliable
    assert layer.next_deadline() == 1.0 + TIMERS.t1  # Timer A runs now
    layer.tick(1.0 + TIMERS.t1)
    assert layer.datagrams_to_send() == [first]


def test_a_destination_is_in_use_while_a_transaction_lives() -> None:
    layer = TransactionLayer(TIMERS)
    register = outgoing("REGISTER")
    layer.send_request(register, PROXY, 0.0, reliable=True)
    transaction = server(layer, "OPTIONS", NAT, reliable=True)
    assert layer.uses(PROXY) and layer.uses(NAT) and not layer.uses(PEER)
    layer.receive(answer(register, 200), PROXY, 0.1)
    layer.respond(transaction, make_response(transaction.request, 200), 0.1)
    layer.tick(0.1)
    assert not layer.uses(PROXY) and not layer.uses(NAT)


def test_answers_due_on_a_closed_connection_go_to_the_sent_by() -> None:
    layer = TransactionLayer(TIMERS)
    transaction = server(layer, "INVITE", NAT, reliable=True,
                         via="SIP/2.0/TCP 10.0.0.5:5070;branch={branch};rport")
    assert layer.connection_lost(NAT) == [(NAT[0], 5070)]
    layer.respond(transaction, make_response(transaction.request, 486, to_tag="t"), 0.0)
    [datagram] = layer.datagrams_to_send()
    assert datagram.address == (NAT[0], 5070)
    assert layer.connection_lost(PEER) == []
