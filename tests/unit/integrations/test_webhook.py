"""The webhook signature scheme on hand-made inputs: ``t=<ts>,v1=<HMAC(secret, "<ts>." + body)>``,
verified in constant time within the replay window; endpoint addresses checked."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from integrations.errors import EndpointInvalid, SignatureExpired, SignatureInvalid
from integrations.webhook import check_url, sign, signature_header, verify_signature

SECRET = b"whsec-test-secret"
BODY = b'{"id":"evt_1","type":"alert.opened"}'


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1767225600, BODY) == expected
    assert signature_header(SECRET, 1767225600, BODY) == f"t=1767225600,v1={expected}"


def test_a_fresh_signature_verifies_and_returns_its_timestamp() -> None:
    header = signature_header(SECRET, 1000, BODY)
    assert verify_signature(SECRET, header, BODY, now=1000 + 299) == 1000


@pytest.mark.parametrize("body", [BODY + b" ", BODY.replace(b"opened", b"cleared"), b""])
def test_an_altered_body_is_refused(body: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(SECRET, signature_header(SECRET, 1000, BODY), body, now=1000)


def test_another_secret_is_refused() -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(b"other", signature_header(SECRET, 1000, BODY), BODY, now=1000)


def test_the_timestamp_is_signed_too() -> None:
    header = signature_header(SECRET, 1000, BODY).replace("t=1000", "t=2000")
    with pytest.raises(SignatureInvalid):
        verify_signature(SECRET, header, BODY, now=2000)


@pytest.mark.parametrize("now", [1000 + 301, 1000 - 301])
def test_outside_the_replay_window_is_expired(now: int) -> None:
    with pytest.raises(SignatureExpired):
        verify_signature(SECRET, signature_header(SECRET, 1000, BODY), BODY, now=now)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=1000", "t=x,v1=ab", "garbage", "t=1000;v1=ab"])
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(SECRET, header, BODY, now=1000)


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    header = signature_header([b"old", b"new"], 1000, BODY)
    assert header.count("v1=") == 2
    assert verify_signature(b"old", header, BODY, now=1000) == 1000
    assert verify_signature(b"new", header, BODY, now=1000) == 1000


@pytest.mark.parametrize("url", ["ftp://x.example/", "https://user:pw@x.example/", "https:///nohost",
                                 "https://x.example/#frag", "https://" + "a" * 2050, "",
                                 "http://127.0.0.1:8080/hook", "http://169.254.169.254/latest",
                                 "http://10.1.2.3/", "http://[::1]/"])
def test_refused_endpoint_addresses(url: str) -> None:
    with pytest.raises(EndpointInvalid):
        check_url(url, resolve=False)


def test_public_and_allowed_private_addresses_pass() -> None:
    assert check_url("https://93.184.215.14/hook", resolve=False) == "https://93.184.215.14/hook"
    assert check_url("http://127.0.0.1:8080/hook", allow_private=True) == "http://127.0.0.1:8080/hook"
