"""Webhook signatures as a partner checks them, the backoff schedule, and the configuration."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.webhook import (
    CONTENT_TYPE,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookConfigError,
    backoff_delay,
    parse_endpoints,
    request_headers,
    sign,
    verify,
)

SECRET = "s3cret-of-politie"
BODY = b'{"specversion":"1.0","id":"e-1","data":{"zaak_ref":"Z-1"}}'
T = 1_767_225_600


def test_the_signature_is_stripe_style_hmac_sha256_over_timestamp_and_body():
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512), t=st.integers(0, 2**40))
def test_a_signature_verifies(secret: bytes, body: bytes, t: int):
    assert verify(secret, body, sign(secret, body, t), now=t)


def test_str_and_bytes_secrets_sign_alike():
    assert sign(SECRET, BODY, T) == sign(SECRET.encode(), BODY, T)


@pytest.mark.parametrize(
    ("body", "secret", "now"),
    [
        pytest.param(BODY + b" ", SECRET, T, id="body-appended"),
        pytest.param(BODY.replace(b"Z-1", b"Z-2"), SECRET, T, id="body-altered"),
        pytest.param(b"", SECRET, T, id="body-empty"),
        pytest.param(BODY, SECRET + "x", T, id="wrong-secret"),
        pytest.param(BODY, SECRET, T + 301, id="stale"),
        pytest.param(BODY, SECRET, T - 301, id="from-the-future"),
    ],
)
def test_what_does_not_verify(body: bytes, secret: str, now: int):
    assert not verify(secret, body, sign(SECRET, BODY, T), now=now)


def test_tolerance_is_inclusive_and_configurable():
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, BODY, header, now=T + 300)
    assert not verify(SECRET, BODY, header, now=T + 10, tolerance_s=5)


def test_the_timestamp_is_signed_too():
    mac = sign(SECRET, BODY, T).split(",v1=")[1]
    assert not verify(SECRET, BODY, f"t={T + 1},v1={mac}", now=T)


def test_one_matching_signature_of_several_verifies():
    good = sign(SECRET, BODY, T).split(",v1=")[1]
    assert verify(SECRET, BODY, f"t={T},v1={'0' * 64},v1={good}", now=T)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"v1={'a' * 64}",  # no timestamp
        f"t={T}",  # no signature
        f"t=abc,v1={'a' * 64}",
        f"t=-{T},v1={'a' * 64}",
        f"t=１２,v1={'a' * 64}",  # non-ASCII digits
        f"t={T},t={T},v1={'a' * 64}",
        f"t={T},v1",
        f"t={T},v0={'a' * 64}",  # an unknown scheme only
    ],
)
def test_a_malformed_header_does_not_verify(header: str | None):
    assert not verify(SECRET, BODY, header, now=T)


def test_request_headers():
    headers = request_headers(SECRET, BODY, "e-1", T)
    assert headers["content-type"] == CONTENT_TYPE == "application/cloudevents+json"
    assert headers[DELIVERY_ID_HEADER] == "e-1"
    assert verify(SECRET, BODY, headers[SIGNATURE_HEADER], now=T)


# -- backoff --------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_delay_up_to_the_cap():
    full = [backoff_delay(n, 0.2, 5.0, jitter=0.999999) for n in range(1, 9)]
    assert full == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0], rel=1e-5)


@given(attempt=st.integers(1, 10_000), jitter=st.floats(0, 1, exclude_max=True))
def test_backoff_with_jitter_stays_between_half_and_full(attempt: int, jitter: float):
    full = min(60.0, 0.2 * 2 ** min(attempt - 1, 60))
    assert full / 2 <= backoff_delay(attempt, 0.2, 60.0, jitter) <= full


# -- configuration --------------------------------------------------------------------------------


def test_endpoints_are_parsed_with_their_secrets_in_partner_order():
    endpoints = parse_endpoints(
        " om=https://om.example/hook , politie=https://127.0.0.1:8443/in",
        "politie=p-secret,om=o-secret",
    )
    assert [(e.partner, e.url, e.secret) for e in endpoints] == [
        ("politie", "https://127.0.0.1:8443/in", b"p-secret"),
        ("om", "https://om.example/hook", b"o-secret"),
    ]
    assert "p-secret" not in repr(endpoints)


def test_nothing_configured_is_no_endpoints():
    assert parse_endpoints(None, None) == []
    assert parse_endpoints("", " ") == []


@pytest.mark.parametrize(
    ("webhooks", "secrets", "message"),
    [
        ("politi=https://x.example", "politi=s", "'politi' is not a partner"),
        ("politie=https://x.example", "ketenbus=s", "'ketenbus' is not a partner"),
        ("politie=http://x.example/hook", "politie=s", "must be an https:// URL"),
        ("politie=x.example/hook", "politie=s", "must be an https:// URL"),
        ("politie=https:///nohost", "politie=s", "must be an https:// URL"),
        ("politie=https://x.example", None, "no secret for politie"),
        ("politie=https://x.example,om=https://y.example", "politie=s", "no secret for om"),
        ("politie=https://x.example", "politie=s,raad=r", "a secret for raad, which has no endpoint"),
        ("politie", "politie=s", "expected partner=value"),
        ("politie=", "politie=s", "expected partner=value"),
        ("politie=https://x.example", "politie=", "expected partner=value"),
        ("politie=https://x.example,politie=https://y.example", "politie=s", "politie is given twice"),
    ],
)
def test_configuration_errors(webhooks: str, secrets: str | None, message: str):
    with pytest.raises(WebhookConfigError, match=message):
        parse_endpoints(webhooks, secrets)


def test_a_configuration_error_never_quotes_a_secret():
    with pytest.raises(WebhookConfigError) as info:
        parse_endpoints("politie=https://x.example", "politie=s,raad,VERY-SECRET")
    assert "VERY-SECRET" not in str(info.value)


# -- the command ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhooks": None, "webhook_secrets": None}, "no webhook endpoints configured"),
        ({"webhooks": "politie=http://x.example", "webhook_secrets": "politie=s"}, "https"),
        ({"webhooks": "politie=https://x.example", "webhook_secrets": "politie=s"}, "KETENBUS_BOOTSTRAP"),
    ],
)
def test_the_command_refuses_a_bad_configuration(overrides, message, capsys):
    from connectors.webhook import main
    from streams.settings import Settings

    assert main(Settings(bootstrap=None, **overrides)) == 2
    assert message in capsys.readouterr().err
