import contextlib
import hashlib
import random
import re

import pytest

from telephony.sip.digest import (
    AuthError,
    Challenge,
    authorization,
    choose_challenge,
    parse_challenge,
)
from telephony.sip.errors import LocalProtocolError, RemoteProtocolError
from telephony.sip.headers import Headers
from telephony.sip.message import Response

# RFC 7616 §3.9.1
REALM = "http-auth@example.org"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="{REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{NONCE}", opaque="{OPAQUE}"'
    )


def params(value: str) -> dict[str, str]:
    """The auth-params of a header value we wrote (our own output has no escaped quotes)."""
    assert value.startswith("Digest ")
    pairs = re.findall(r'([a-z]+)=("[^"]*"|[^,\s]+)', value[len("Digest ") :])
    return {name: raw.strip('"') for name, raw in pairs}


def md5(data: str | bytes) -> str:
    return hashlib.md5(data if isinstance(data, bytes) else data.encode()).hexdigest()


def response(status: int, *fields: tuple[str, str]) -> Response:
    return Response(headers=Headers(list(fields)), body=b"", status=status, reason="")


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    challenge = parse_challenge(rfc7616_challenge(algorithm))
    value = authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=CNONCE,
    )
    got = params(value)
    assert got["response"] == expected
    assert got["username"] == "Mufasa"
    assert got["realm"] == REALM
    assert got["nonce"] == NONCE
    assert got["uri"] == "/dir/index.html"
    assert got["algorithm"] == algorithm
    assert got["qop"] == "auth"
    assert got["nc"] == "00000001"
    assert got["cnonce"] == CNONCE
    assert got["opaque"] == OPAQUE
    assert 'qop="auth"' not in value  # qop and nc are tokens in the answer (RFC 7616 §3.4)


def test_rfc2617_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert params(value)["response"] == "6629fae49393a05397450978507c4ef1"
    assert params(value)["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def test_rfc2069_challenge_without_qop() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    )
    value = authorization(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa", password="Circle Of Life"
    )
    got = params(value)
    # MD5(HA1:nonce:HA2) with HA1, HA2 of the RFC 2617 example.
    assert got["response"] == "670fd8c2df070c60b045671b8b24ff02"
    assert "qop" not in got and "nc" not in got and "cnonce" not in got
    assert "opaque" not in got
    assert got["algorithm"] == "MD5"


def test_sip_register_challenge() -> None:
    challenge = parse_challenge(
        'Digest realm="asterisk",nonce="1712345678/0123456789abcdef",algorithm=md5,qop="auth"'
    )
    assert challenge.algorithm == "MD5"
    value = authorization(
        challenge,
        method="register",
        uri="sip:example.com",
        username="1001",
        password="secret",
        nc=2,
        cnonce="abc",
    )
    got = params(value)
    assert got["nc"] == "00000002"
    assert got["uri"] == "sip:example.com"
    ha1 = md5("1001:asterisk:secret")
    ha2 = md5("REGISTER:sip:example.com")
    expected = md5(f"{ha1}:1712345678/0123456789abcdef:00000002:abc:auth:{ha2}")
    assert got["response"] == expected


def test_random_cnonce_when_none_given() -> None:
    challenge = parse_challenge(rfc7616_challenge("MD5"))
    kwargs = {"method": "INVITE", "uri": "sip:b@h", "username": "u", "password": "p"}
    first = params(authorization(challenge, **kwargs))  # type: ignore[arg-type]
    second = params(authorization(challenge, **kwargs))  # type: ignore[arg-type]
    assert len(first["cnonce"]) >= 16
    assert first["cnonce"] != second["cnonce"]
    assert first["response"] != second["response"]


def test_password_never_appears_in_the_header() -> None:
    challenge = parse_challenge(rfc7616_challenge("SHA-256"))
    value = authorization(
        challenge, method="INVITE", uri="sip:b@h", username="u", password="hunter2-secret"
    )
    assert "hunter2-secret" not in value


def test_md5_sess() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess')
    assert challenge.algorithm == "MD5-sess"
    got = params(
        authorization(
            challenge, method="INVITE", uri="sip:x", username="u", password="p", cnonce="c"
        )
    )
    ha1 = md5(f"{md5('u:r:p')}:n:c")
    assert got["response"] == md5(f"{ha1}:n:00000001:c:auth:{md5('INVITE:sip:x')}")
    assert got["algorithm"] == "MD5-sess"


def test_auth_int_only_hashes_the_body() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    got = params(
        authorization(
            challenge,
            method="INVITE",
            uri="sip:x",
            username="u",
            password="p",
            cnonce="c",
            body=b"v=0\r\n",
        )
    )
    body_hash = md5(b"v=0\r\n")
    ha2 = md5(f"INVITE:sip:x:{body_hash}")
    assert got["qop"] == "auth-int"
    assert got["response"] == md5(f"{md5('u:r:p')}:n:00000001:c:auth-int:{ha2}")


def test_username_with_quote_is_escaped() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    value = authorization(challenge, method="INVITE", uri="sip:x", username='a"b\\c', password="p")
    assert 'username="a\\"b\\\\c"' in value


# --- parsing ----------------------------------------------------------------------------------


def test_parse_full_challenge() -> None:
    challenge = parse_challenge(rfc7616_challenge("SHA-256"))
    assert challenge == Challenge(
        realm=REALM,
        nonce=NONCE,
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
        opaque=OPAQUE,
        stale=False,
    )


def test_parse_quoted_strings_with_escapes_and_commas() -> None:
    challenge = parse_challenge(
        r'Digest realm="we say \"hi\", then \\ bye", nonce="a,b=c", stale=TRUE, '
        r'opaque="", domain="sip:a sip:b"'
    )
    assert challenge.realm == 'we say "hi", then \\ bye'
    assert challenge.nonce == "a,b=c"
    assert challenge.stale is True
    assert challenge.opaque == ""


def test_parse_is_lenient_about_case_and_spacing() -> None:
    challenge = parse_challenge(
        'digest   REALM = "r" ,NONCE="n",Algorithm="sha-256",QOP="AUTH"  ,  stale=false'
    )
    assert (challenge.realm, challenge.nonce, challenge.algorithm) == ("r", "n", "SHA-256")
    assert challenge.qop == ("auth",)
    assert challenge.stale is False


def test_parse_defaults() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    assert challenge.algorithm == "MD5"
    assert challenge.qop == ()
    assert challenge.opaque is None
    assert challenge.stale is False


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Digest",
        'Basic realm="r"',
        'Bearer realm="r", nonce="n"',
        'Digest nonce="n"',
        'Digest realm="r"',
        'Digest realm="r", nonce=""',
        'Digest realm="r, nonce="n"',  # unterminated quote
        'Digest realm="r" nonce="n"',  # missing comma
        'Digest realm, nonce="n"',
        "Digest =x",
    ],
)
def test_parse_rejects(value: str) -> None:
    with pytest.raises(AuthError):
        parse_challenge(value)


def test_auth_error_is_a_remote_protocol_error() -> None:
    assert issubclass(AuthError, RemoteProtocolError)


# --- choosing -------------------------------------------------------------------------------


def test_401_answers_with_authorization() -> None:
    header, challenge = choose_challenge(
        response(401, ("WWW-Authenticate", 'Digest realm="r", nonce="n"'))
    )
    assert header == "Authorization"
    assert challenge.realm == "r"


def test_407_answers_with_proxy_authorization() -> None:
    header, challenge = choose_challenge(
        response(
            407,
            ("WWW-Authenticate", 'Digest realm="wrong", nonce="n"'),
            ("Proxy-Authenticate", 'Digest realm="proxy", nonce="n"'),
        )
    )
    assert header == "Proxy-Authorization"
    assert challenge.realm == "proxy"


def test_401_ignores_proxy_authenticate() -> None:
    with pytest.raises(AuthError):
        choose_challenge(response(401, ("Proxy-Authenticate", 'Digest realm="r", nonce="n"')))


def test_sha256_preferred_over_md5_whatever_the_order() -> None:
    _, challenge = choose_challenge(
        response(
            401,
            ("WWW-Authenticate", rfc7616_challenge("MD5")),
            ("WWW-Authenticate", rfc7616_challenge("SHA-256")),
        )
    )
    assert challenge.algorithm == "SHA-256"


def test_unsupported_and_non_digest_challenges_are_skipped() -> None:
    _, challenge = choose_challenge(
        response(
            401,
            ("WWW-Authenticate", 'Basic realm="r"'),
            ("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=SHA-512-256'),
            ("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=AKAv1-MD5'),
            ("WWW-Authenticate", 'Digest realm="r", nonce="m", qop="auth-conf"'),
            ("WWW-Authenticate", 'Digest realm="r", nonce="ok", algorithm=MD5'),
        )
    )
    assert challenge.nonce == "ok"


def test_no_usable_challenge_raises() -> None:
    with pytest.raises(AuthError):
        choose_challenge(
            response(401, ("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=SHA-512'))
        )
    with pytest.raises(AuthError):
        choose_challenge(response(407))


def test_choose_on_a_non_challenge_status_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        choose_challenge(response(200))


def test_unsupported_algorithm_cannot_be_answered() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-512-256')
    with pytest.raises(AuthError):
        authorization(challenge, method="INVITE", uri="sip:x", username="u", password="p")


def test_unsupported_qop_cannot_be_answered() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-conf"')
    with pytest.raises(AuthError):
        authorization(challenge, method="INVITE", uri="sip:x", username="u", password="p")


def test_mutated_challenges_only_ever_raise_auth_error() -> None:
    rng = random.Random(7616)
    base = (
        r'Digest realm="we \"x\"", nonce="a,b", qop="auth,auth-int", algorithm=SHA-256, opaque="o"'
    )
    for _ in range(3000):
        chars = list(base)
        for _ in range(rng.randint(1, 5)):
            pos = rng.randrange(len(chars) + 1)
            if rng.random() < 0.4:
                del chars[pos : pos + rng.randint(1, 5)]
            else:
                chars.insert(pos, rng.choice(' ,="\\\x00\r\nZ'))
        with contextlib.suppress(AuthError):
            challenge = parse_challenge("".join(chars))
            authorization(challenge, method="INVITE", uri="sip:x", username="u", password="p")
