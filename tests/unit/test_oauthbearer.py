"""The OAUTHBEARER message parser and unsecured-JWS validator (broker/auth/oauthbearer.py)."""

from __future__ import annotations

import pytest

from kafkito.broker.auth.oauthbearer import (
    OAuthBearerError,
    parse_initial_response,
    unsecured_token,
    validate_unsecured,
)

NOW_MS = 1_800_000_000_000


def test_parse_the_client_first_message() -> None:
    token, authzid, extensions = parse_initial_response(
        b"n,a=alice,\x01auth=Bearer abc.def.\x01traceId=7\x01\x01"
    )
    assert (token, authzid, extensions) == ("abc.def.", "alice", {"traceId": "7"})
    assert parse_initial_response(b"n,,\x01auth=bearer t\x01\x01")[:2] == ("t", None)
    for bad in (
        b"y,,\x01auth=Bearer t\x01\x01",  # channel binding is not "n"
        b"n,,\x01auth=Bearer t\x01",  # no final 0x01 0x01
        b"n,,\x01auth=Basic t\x01\x01",
        b"n,,\x01noequals\x01\x01",
        b"n,,\xff\x01\x01",
        b"n,," + b"x" * 70_000,
    ):
        with pytest.raises(OAuthBearerError):
            parse_initial_response(bad)


def test_validate_unsecured_tokens() -> None:
    now_s = NOW_MS / 1000
    good = unsecured_token("alice", lifetime_s=60, now_s=now_s)
    valid = validate_unsecured(good, NOW_MS)
    assert valid.principal == "alice" and valid.expires_ms == NOW_MS + 60_000
    expired = unsecured_token("alice", lifetime_s=-1, now_s=now_s)
    with pytest.raises(OAuthBearerError, match="expired"):
        validate_unsecured(expired, NOW_MS)
    future = unsecured_token("alice", lifetime_s=60, now_s=now_s + 10)
    with pytest.raises(OAuthBearerError, match="future"):
        validate_unsecured(future, NOW_MS)
    with pytest.raises(OAuthBearerError, match="unsecured"):
        validate_unsecured(good + "signature", NOW_MS)
    for junk in ("a.b", "%%%.%%%.", "e30.e30."):
        with pytest.raises(OAuthBearerError):
            validate_unsecured(junk, NOW_MS)
    assert OAuthBearerError("x").challenge() == b'{"status":"invalid_token"}'
