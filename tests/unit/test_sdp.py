import contextlib
import random

import pytest

from telephony.sip.codecs import PCMA, PCMU, MediaParams
from telephony.sip.errors import RemoteProtocolError
from telephony.sip.sdp import (
    MAX_SDP_BYTES,
    LocalMedia,
    SdpError,
    SessionDescription,
    parse_sdp,
)

SIPP_DEFAULT = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

# What baresip 1.0.0 offers with its g711 module and no media encryption.
BARESIP = (
    b"v=0\r\n"
    b"o=- 1975181172 1106161735 IN IP4 192.168.1.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.168.1.1\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 1.0.0\r\n"
    b"m=audio 16796 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
    b"a=label:1\r\n"
    b"a=rtcp-rsize\r\n"
    b"a=ssrc:2736692082 cname:sip:b@example.com\r\n"
    b"a=minptime:20\r\n"
    b"a=ptime:20\r\n"
)


def sdp(*lines: str, newline: str = "\r\n") -> bytes:
    return (newline.join(lines) + newline).encode()


def offer_with(*media_lines: str, session: tuple[str, ...] = ()) -> bytes:
    return sdp(
        "v=0",
        "o=peer 1 1 IN IP4 10.0.0.9",
        "s=-",
        "c=IN IP4 10.0.0.9",
        "t=0 0",
        *session,
        *media_lines,
    )


def m_lines(body: bytes) -> list[str]:
    return [line for line in body.decode().split("\r\n") if line.startswith("m=")]


def attributes(body: bytes) -> list[str]:
    return [line for line in body.decode().split("\r\n") if line.startswith("a=")]


def origin_version(body: bytes) -> int:
    return parse_sdp(body).origin.session_version


def local(**kwargs: object) -> LocalMedia:
    return LocalMedia("192.0.2.10", 40000, session_id=4242, **kwargs)  # type: ignore[arg-type]


# --- parsing --------------------------------------------------------------------------------


def test_parses_sipp_default_sdp() -> None:
    parsed = parse_sdp(SIPP_DEFAULT)
    assert isinstance(parsed, SessionDescription)
    assert parsed.origin.username == "user1"
    assert parsed.origin.session_id == "53655765"
    assert parsed.origin.session_version == 2353687637
    assert parsed.connection is not None and parsed.connection.address == "127.0.0.1"
    (audio,) = parsed.media
    assert (audio.media, audio.port, audio.proto, audio.payload_types) == (
        "audio",
        6000,
        "RTP/AVP",
        (0,),
    )
    assert audio.rtpmap[0].encoding == "PCMU"
    assert parsed.direction_for(audio) == "sendrecv"


def test_parses_lf_only_and_ignores_unknown_lines() -> None:
    body = sdp(
        "v=0",
        "o=- 1 2 IN IP4 10.0.0.1",
        "s=x",
        "z=something new",
        "t=0 0",
        "m=audio 5004 RTP/AVP 8",
        "c=IN IP4 10.0.0.2",
        "b=AS:64",
        "a=x-unknown:whatever",
        newline="\n",
    )
    parsed = parse_sdp(body)
    assert parsed.connection is None
    assert parsed.connection_for(parsed.media[0]) is not None
    assert parsed.connection_for(parsed.media[0]).address == "10.0.0.2"  # type: ignore[union-attr]


def test_media_level_connection_overrides_session_level() -> None:
    body = offer_with("m=audio 7000 RTP/AVP 0", "c=IN IP4 10.1.1.1")
    _, params = local().answer(body)
    assert params.remote == ("10.1.1.1", 7000)


def test_parses_ipv6_connection() -> None:
    body = sdp(
        "v=0",
        "o=- 1 1 IN IP6 2001:db8::1",
        "s=-",
        "c=IN IP6 2001:db8::1",
        "t=0 0",
        "m=audio 6000 RTP/AVP 0",
    )
    parsed = parse_sdp(body)
    assert parsed.connection is not None
    assert (parsed.connection.addr_type, parsed.connection.address) == ("IP6", "2001:db8::1")
    _, params = local().answer(body)
    assert params.remote == ("2001:db8::1", 6000)


def test_ipv6_local_host_writes_ip6() -> None:
    body = LocalMedia("[2001:db8::5]", 40000).offer()
    assert "c=IN IP6 2001:db8::5\r\n" in body.decode()
    assert parse_sdp(body).origin.addr_type == "IP6"


def test_multicast_ttl_is_stripped() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 0", "c=IN IP4 224.2.1.1/127")
    assert parse_sdp(body).media[0].connection.address == "224.2.1.1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"hello world",
        b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        b"v=0\r\ns=-\r\n",  # no o=
        b"v=0\r\no=- 1 x IN IP4 1.2.3.4\r\n",  # version not a number
        b"v=0\r\no=- 1 1 IN IP4\r\n",  # o= too short
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio -1 RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nthis is not sdp\r\n",
        b"<html><body>not sdp</body></html>",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio ٣ RTP/AVP 0\r\n".encode(),
    ],
)
def test_garbage_raises_sdp_error_only(garbage: bytes) -> None:
    with pytest.raises(SdpError):
        parse_sdp(garbage)
    with pytest.raises(SdpError):
        local().answer(garbage)
    with pytest.raises(SdpError):
        local().accept_answer(garbage)


def test_sdp_error_is_a_remote_protocol_error() -> None:
    assert issubclass(SdpError, RemoteProtocolError)


def test_rejects_oversized_sdp() -> None:
    padding = "".join(f"a=x-pad:{i:08d}\r\n" for i in range(MAX_SDP_BYTES // 16))
    with pytest.raises(SdpError):
        parse_sdp(SIPP_DEFAULT + padding.encode())


def test_rejects_too_many_media_lines() -> None:
    many = tuple(f"m=video {6000 + 2 * i} RTP/AVP 96" for i in range(65))
    with pytest.raises(SdpError):
        parse_sdp(offer_with("m=audio 5000 RTP/AVP 0", *many))
    assert len(parse_sdp(offer_with(*many[:64])).media) == 64


def test_malformed_rtpmap_is_ignored_not_fatal() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 0 8", "a=rtpmap:0", "a=rtpmap:x PCMA/8000")
    _, params = local().answer(body)
    assert params.codec == PCMU


# --- answering an initial offer -------------------------------------------------------------


def test_answers_sipp_default_offer() -> None:
    answer, params = local().answer(SIPP_DEFAULT)
    assert params == MediaParams(("127.0.0.1", 6000), PCMU, None, True, True)
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 0"]
    assert "a=sendrecv" in attributes(answer)
    assert not any("telephone-event" in a for a in attributes(answer))
    parsed = parse_sdp(answer)
    assert parsed.connection is not None and parsed.connection.address == "192.0.2.10"
    assert parsed.origin.session_id == "4242"


def test_answers_baresip_offer_with_telephone_event() -> None:
    answer, params = local().answer(BARESIP)
    assert params.remote == ("192.168.1.1", 16796)
    assert params.codec == PCMU
    assert params.telephone_event_pt == 101
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 0 101"]
    assert "a=rtpmap:101 telephone-event/8000" in attributes(answer)
    assert "a=fmtp:101 0-15" in attributes(answer)  # the offerer's event range, echoed
    assert "a=ptime:20" in attributes(answer)


def test_baresip_with_srtp_only_is_not_acceptable() -> None:
    with pytest.raises(SdpError):
        local().answer(BARESIP.replace(b"RTP/AVP", b"RTP/SAVP"))


def test_answer_follows_offerers_codec_order() -> None:
    _, params = local().answer(offer_with("m=audio 6000 RTP/AVP 8 0"))
    assert params.codec == PCMA


def test_pcma_only_offer() -> None:
    answer, params = local().answer(offer_with("m=audio 6000 RTP/AVP 8", "a=rtpmap:8 PCMA/8000"))
    assert params.codec == PCMA
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 8"]
    assert "a=rtpmap:8 PCMA/8000" in attributes(answer)


def test_codec_names_are_case_insensitive_and_dynamic_numbers_kept() -> None:
    body = offer_with(
        "m=audio 6000 RTP/AVP 96 97", "a=rtpmap:96 opus/48000/2", "a=rtpmap:97 pcma/8000"
    )
    answer, params = local().answer(body)
    assert params.codec.name == "PCMA"
    assert params.codec.law == PCMA.law
    assert params.codec.payload_type == 97
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 97"]


def test_skips_offered_codecs_we_do_not_have() -> None:
    body = offer_with(
        "m=audio 6000 RTP/AVP 9 18 3 8 0",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:18 G729/8000",
    )
    _, params = local().answer(body)
    assert params.codec == PCMA


def test_no_common_codec_raises() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 9 18 101", "a=rtpmap:101 telephone-event/8000")
    with pytest.raises(SdpError):
        local().answer(body)


def test_dynamic_payload_type_without_rtpmap_is_unusable() -> None:
    with pytest.raises(SdpError):
        local().answer(offer_with("m=audio 6000 RTP/AVP 96"))


def test_our_codec_subset_is_respected() -> None:
    with pytest.raises(SdpError):
        local(codecs=(PCMA,)).answer(SIPP_DEFAULT)


def test_uses_offerers_telephone_event_number() -> None:
    body = offer_with(
        "m=audio 6000 RTP/AVP 0 100", "a=rtpmap:100 telephone-event/8000", "a=fmtp:100 0-16"
    )
    answer, params = local().answer(body)
    assert params.telephone_event_pt == 100
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 0 100"]
    assert "a=rtpmap:100 telephone-event/8000" in attributes(answer)


def test_telephone_event_at_another_clock_rate_is_not_ours() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/48000")
    _, params = local().answer(body)
    assert params.telephone_event_pt is None


def test_rejects_video_and_extra_streams_with_port_zero() -> None:
    body = offer_with(
        "m=video 5008 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "m=audio 6000 RTP/SAVP 0",
        "m=audio 6002 RTP/AVP 0",
        "m=audio 6004 RTP/AVP 8",
        "m=application 5010 UDP/BFCP *",
    )
    answer, params = local().answer(body)
    assert params.remote == ("10.0.0.9", 6002)
    assert m_lines(answer) == [
        "m=video 0 RTP/AVP 96",
        "m=audio 0 RTP/SAVP 0",
        "m=audio 40000 RTP/AVP 0",
        "m=audio 0 RTP/AVP 8",
        "m=application 0 UDP/BFCP *",
    ]


def test_audio_with_port_zero_is_skipped() -> None:
    body = offer_with("m=audio 0 RTP/AVP 0", "m=audio 6002 RTP/AVP 8")
    answer, params = local().answer(body)
    assert params.codec == PCMA
    assert m_lines(answer) == ["m=audio 0 RTP/AVP 0", "m=audio 40000 RTP/AVP 8"]


def test_offer_without_any_audio_is_refused() -> None:
    with pytest.raises(SdpError):
        local().answer(offer_with("m=video 5008 RTP/AVP 96", "a=rtpmap:96 H264/90000"))


def test_audio_without_connection_is_refused() -> None:
    body = sdp("v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "t=0 0", "m=audio 6000 RTP/AVP 0")
    with pytest.raises(SdpError):
        local().answer(body)


@pytest.mark.parametrize(
    ("offered", "answered", "sending", "receiving"),
    [
        ("sendrecv", "sendrecv", True, True),
        ("sendonly", "recvonly", False, True),
        ("recvonly", "sendonly", True, False),
        ("inactive", "inactive", False, False),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str, sending: bool, receiving: bool) -> None:
    answer, params = local().answer(offer_with("m=audio 6000 RTP/AVP 0", f"a={offered}"))
    assert f"a={answered}" in attributes(answer)
    assert (params.sending, params.receiving) == (sending, receiving)


def test_session_level_direction_applies_when_media_has_none() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 0", session=("a=sendonly",))
    answer, params = local().answer(body)
    assert "a=recvonly" in attributes(answer)
    assert not params.sending


def test_media_level_direction_wins_over_session_level() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 0", "a=sendrecv", session=("a=inactive",))
    _, params = local().answer(body)
    assert params.sending and params.receiving


def test_zero_address_means_we_must_not_send() -> None:
    body = sdp(
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 6000 RTP/AVP 0",
    )
    answer, params = local().answer(body)
    assert not params.sending
    assert params.receiving
    assert "a=recvonly" in attributes(answer)


def test_answer_echoes_offer_timing() -> None:
    body = offer_with("m=audio 6000 RTP/AVP 0").replace(b"t=0 0", b"t=3034423619 3042462419")
    answer, _ = local().answer(body)
    assert "t=3034423619 3042462419\r\n" in answer.decode()


# --- our offer and the peer's answer --------------------------------------------------------


def test_offer_lists_our_codecs_and_telephone_event() -> None:
    body = local().offer()
    assert m_lines(body) == ["m=audio 40000 RTP/AVP 0 8 101"]
    assert attributes(body) == [
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    assert body.startswith(b"v=0\r\no=- 4242 ")
    assert body.endswith(b"\r\n")


def test_offer_with_custom_codecs_and_event_number() -> None:
    body = local(codecs=(PCMA,), telephone_event_pt=96).offer()
    assert m_lines(body) == ["m=audio 40000 RTP/AVP 8 96"]


def test_random_session_ids_differ() -> None:
    a, b = LocalMedia("10.0.0.1", 4000), LocalMedia("10.0.0.1", 4000)
    assert a.session_id != b.session_id
    assert 0 <= a.session_id < 2**62


def test_round_trip_between_two_local_media() -> None:
    alice = LocalMedia("10.0.0.1", 4000)
    bob = LocalMedia("10.0.0.2", 5000, codecs=(PCMA, PCMU), telephone_event_pt=110)
    answer, bob_params = bob.answer(alice.offer())
    alice_params = alice.accept_answer(answer)
    # Bob follows the offerer's order (PCMU first), and its event number.
    assert bob_params == MediaParams(("10.0.0.1", 4000), PCMU, 101, True, True)
    assert alice_params == MediaParams(("10.0.0.2", 5000), PCMU, 101, True, True)


def test_round_trip_pcma_only_answerer() -> None:
    alice = LocalMedia("10.0.0.1", 4000)
    bob = LocalMedia("10.0.0.2", 5000, codecs=(PCMA,))
    answer, bob_params = bob.answer(alice.offer())
    assert alice.accept_answer(answer).codec == PCMA == bob_params.codec


def test_round_trip_no_common_codec() -> None:
    alice = LocalMedia("10.0.0.1", 4000, codecs=(PCMU,))
    bob = LocalMedia("10.0.0.2", 5000, codecs=(PCMA,))
    with pytest.raises(SdpError):
        bob.answer(alice.offer())


def test_accept_answer_from_sipp() -> None:
    media = local()
    media.offer()
    params = media.accept_answer(SIPP_DEFAULT)
    assert params == MediaParams(("127.0.0.1", 6000), PCMU, None, True, True)


def test_accept_answer_rejecting_audio_raises() -> None:
    media = local()
    media.offer()
    with pytest.raises(SdpError):
        media.accept_answer(offer_with("m=audio 0 RTP/AVP 0"))


def test_accept_answer_with_codec_we_did_not_offer_raises() -> None:
    media = local(codecs=(PCMU,))
    media.offer()
    with pytest.raises(SdpError):
        media.accept_answer(offer_with("m=audio 6000 RTP/AVP 8"))


def test_accept_answer_sendonly_means_we_only_receive() -> None:
    media = local()
    media.offer()
    params = media.accept_answer(offer_with("m=audio 6000 RTP/AVP 0", "a=sendonly"))
    assert (params.sending, params.receiving) == (False, True)


def test_hold_offer_from_us() -> None:
    alice = LocalMedia("10.0.0.1", 4000, session_id=1)
    bob = LocalMedia("10.0.0.2", 5000)
    first = alice.offer()
    answer, _ = bob.answer(first)
    alice.accept_answer(answer)
    hold = alice.offer("sendonly")
    assert origin_version(hold) == origin_version(first) + 1
    hold_answer, bob_params = bob.reanswer(hold, MediaParams(("10.0.0.1", 4000), PCMU))
    assert (bob_params.sending, bob_params.receiving) == (False, True)
    alice_params = alice.accept_answer(hold_answer)
    assert (alice_params.sending, alice_params.receiving) == (True, False)


# --- re-offers ------------------------------------------------------------------------------


def test_reoffer_with_same_content_keeps_version() -> None:
    media = local()
    first, params = media.answer(BARESIP)
    again, again_params = media.reanswer(BARESIP, params)
    assert again == first
    assert again_params == params
    assert origin_version(again) == origin_version(first)


def test_changed_answer_increments_version_once() -> None:
    media = local()
    first, params = media.answer(BARESIP)
    held, held_params = media.reanswer(BARESIP.replace(b"a=sendrecv", b"a=sendonly"), params)
    assert origin_version(held) == origin_version(first) + 1
    assert (held_params.sending, held_params.receiving) == (False, True)
    resumed, resumed_params = media.reanswer(BARESIP, held_params)
    assert origin_version(resumed) == origin_version(first) + 2
    assert resumed_params.sending and resumed_params.receiving
    same, _ = media.reanswer(BARESIP, resumed_params)
    assert origin_version(same) == origin_version(resumed)


def test_reoffer_keeps_current_codec_if_still_offered() -> None:
    media = local()
    _, params = media.answer(offer_with("m=audio 6000 RTP/AVP 8 0"))
    assert params.codec == PCMA
    answer, again = media.reanswer(offer_with("m=audio 6000 RTP/AVP 0 8"), params)
    assert again.codec == PCMA
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 8"]


def test_reoffer_without_current_codec_switches() -> None:
    media = local()
    _, params = media.answer(offer_with("m=audio 6000 RTP/AVP 8 0"))
    answer, again = media.reanswer(offer_with("m=audio 6000 RTP/AVP 0"), params)
    assert again.codec == PCMU
    assert m_lines(answer) == ["m=audio 40000 RTP/AVP 0"]


def test_reoffer_with_moved_remote_is_reflected_and_keeps_our_port() -> None:
    media = local()
    first, params = media.answer(SIPP_DEFAULT)
    moved = SIPP_DEFAULT.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 127.0.0.2").replace(
        b"m=audio 6000", b"m=audio 6010"
    )
    answer, again = media.reanswer(moved, params)
    assert again.remote == ("127.0.0.2", 6010)
    assert m_lines(answer) == m_lines(first)
    assert origin_version(answer) == origin_version(first)


def test_old_style_hold_reoffer() -> None:
    media = local()
    _, params = media.answer(SIPP_DEFAULT)
    hold = SIPP_DEFAULT.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")
    answer, held = media.reanswer(hold, params)
    assert not held.sending
    assert held.receiving
    assert "a=recvonly" in attributes(answer)


def test_reoffer_with_no_common_codec_raises_and_keeps_state() -> None:
    media = local()
    first, params = media.answer(SIPP_DEFAULT)
    with pytest.raises(SdpError):
        media.reanswer(offer_with("m=audio 6000 RTP/AVP 18"), params)
    assert media.current_sdp() == first


def test_current_sdp_is_last_sent_unchanged() -> None:
    media = local()
    answer, _ = media.answer(BARESIP)
    assert media.current_sdp() == answer
    assert media.current_sdp() == answer


def test_current_sdp_before_anything_is_an_offer() -> None:
    media = local()
    body = media.current_sdp()
    assert m_lines(body) == ["m=audio 40000 RTP/AVP 0 8 101"]
    assert media.current_sdp() == body


def test_mutated_sdp_only_ever_raises_sdp_error() -> None:
    rng = random.Random(20240501)
    alphabet = b"0123456789 =/:\r\n\x00\xff.-amcotv" + "٣²".encode()
    current = MediaParams(("10.0.0.9", 6000), PCMU)
    for _ in range(3000):
        data = bytearray(rng.choice((BARESIP, SIPP_DEFAULT)))
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data) + 1)
            if rng.random() < 0.5:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        body = bytes(data)
        with contextlib.suppress(SdpError):
            local().answer(body)
        with contextlib.suppress(SdpError):
            local().reanswer(body, current)
        with contextlib.suppress(SdpError):
            local().accept_answer(body)


def test_reoffer_of_an_answer_with_dynamic_numbering_accepts_static_answer() -> None:
    media = local()
    media.answer(offer_with("m=audio 6000 RTP/AVP 97", "a=rtpmap:97 PCMA/8000"))
    reoffer = media.current_sdp()  # offerless re-INVITE: our last SDP goes out again
    assert m_lines(reoffer) == ["m=audio 40000 RTP/AVP 97"]
    params = media.accept_answer(offer_with("m=audio 6000 RTP/AVP 8"))
    assert params.codec == PCMA
