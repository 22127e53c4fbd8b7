"""Tests of `schemas.envelope`: CloudEvents binary mode on Kafka headers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import (
    BAD_CONTENT_TYPE,
    BAD_HEADER,
    BAD_SOURCE,
    BAD_SPECVERSION,
    BAD_TIME,
    CONTENT_TYPE,
    MISSING,
    REQUIRED,
    SOURCE_PREFIX,
    SPECVERSION,
    UNKNOWN_TYPE,
    Envelope,
    EnvelopeError,
    format_time,
    header,
    parse_time,
    partner_of,
    source_for,
)
from schemas.registry import PARTNERS, PRODUCERS, all_ce_types

T = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)
TYPE = "nl.ketenbus.melding.ontvangen"


def envelope(**extensions: str) -> Envelope:
    return Envelope.new("veilig-thuis", TYPE, "ZAAK-1", T, **extensions)


VALID = envelope(ketenbus_grondslag="art. 5.2.6 Wmo 2015")


def valid_headers() -> list[tuple[str, bytes | None]]:
    return list(VALID.to_headers())


def replaced(key: str, value: bytes | None) -> list[tuple[str, bytes | None]]:
    return [(k, value if k == key else v) for k, v in valid_headers()]


def without(key: str) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in valid_headers() if k != key]


def reason_of(headers: Any) -> str:
    with pytest.raises(EnvelopeError) as excinfo:
        Envelope.from_headers(headers)
    assert str(excinfo.value).startswith(excinfo.value.reason)
    return excinfo.value.reason


# -- round trip ----------------------------------------------------------------------------


def test_headers_round_trip() -> None:
    env = envelope(ketenbus_grondslag="art. 5.2.6 Wmo 2015", ketenbus_doel="veiligheid")
    headers = env.to_headers()
    as_dict = dict(headers)
    assert as_dict["ce_specversion"] == b"1.0"
    assert as_dict["ce_source"] == b"urn:nld:ketenbus:partner:veilig-thuis"
    assert as_dict["ce_type"] == TYPE.encode()
    assert as_dict["ce_time"] == b"2024-05-01T12:00:00.123Z"
    assert as_dict["ce_subject"] == b"ZAAK-1"
    assert as_dict["content-type"] == b"application/avro"
    assert as_dict["ketenbus_doel"] == b"veiligheid"
    assert all(isinstance(v, bytes) for _, v in headers)
    assert Envelope.from_headers(headers) == env
    assert Envelope.from_headers(headers).partner == "veilig-thuis"


def test_new_envelopes_get_distinct_ids() -> None:
    assert envelope().id != envelope().id


def test_time_is_written_in_utc_with_milliseconds() -> None:
    local = dt.datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    env = Envelope.new("politie", TYPE, "Z", local)
    assert dict(env.to_headers())["ce_time"] == b"2024-05-01T12:00:00.123Z"
    assert Envelope.from_headers(env.to_headers()).time == T


def test_offsets_other_than_z_are_read() -> None:
    headers = replaced("ce_time", b"2024-05-01T14:00:00.123+02:00")
    assert Envelope.from_headers(headers).time == T


def test_naive_time_cannot_be_written() -> None:
    with pytest.raises(ValueError):
        format_time(dt.datetime(2024, 5, 1, 12, 0))


def test_short_type_form_is_accepted_and_made_canonical() -> None:
    # what goes on keten.events and the outboxes is always the CloudEvents form
    env = Envelope.from_headers(replaced("ce_type", b"Melding.ontvangen"))
    assert env.type == "nl.ketenbus.melding.ontvangen"


def test_only_ketenbus_extensions_are_kept() -> None:
    headers = [*valid_headers(), ("traceparent", b"00-abc-def-01"), ("ketenbus_fields", b"woonadres")]
    env = Envelope.from_headers(headers)
    assert env.extensions == {"ketenbus_grondslag": "art. 5.2.6 Wmo 2015", "ketenbus_fields": "woonadres"}


def test_none_values_and_bytearrays() -> None:
    headers: list[tuple[str, Any]] = [(k, bytearray(v)) for k, v in valid_headers() if v is not None]
    headers.append(("ketenbus_leeg", None))
    env = Envelope.from_headers(headers)
    assert env.subject == "ZAAK-1"
    assert "ketenbus_leeg" not in env.extensions


_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
_times = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=_offsets
).map(lambda t: t.replace(microsecond=t.microsecond - t.microsecond % 1000))


@settings(max_examples=100, deadline=None)
@given(
    partner=st.sampled_from(PRODUCERS),
    ce_type=st.sampled_from(all_ce_types()),
    subject=st.text(min_size=1, max_size=40),
    time=_times,
    extensions=st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).map(lambda k: f"ketenbus_{k}"),
        st.text(max_size=20),
        max_size=3,
    ),
)
def test_round_trip_property(
    partner: str, ce_type: str, subject: str, time: dt.datetime, extensions: dict[str, str]
) -> None:
    env = Envelope.new(partner, ce_type, subject, time, **extensions)
    back = Envelope.from_headers(env.to_headers())
    assert back == env
    assert back.time.utcoffset() == dt.timedelta(0)
    assert back.partner == partner


# -- every reason --------------------------------------------------------------------------


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_attribute(key: str) -> None:
    assert reason_of(without(key)) == MISSING
    assert reason_of(replaced(key, b"")) == MISSING
    assert reason_of(replaced(key, None)) == MISSING


def test_no_headers_at_all() -> None:
    assert reason_of(None) == MISSING
    assert reason_of([]) == MISSING


def test_missing_detail_names_the_attributes() -> None:
    with pytest.raises(EnvelopeError) as excinfo:
        Envelope.from_headers([(k, v) for k, v in valid_headers() if k not in ("ce_id", "ce_time")])
    assert "ce_id" in excinfo.value.detail
    assert "ce_time" in excinfo.value.detail


@pytest.mark.parametrize("value", [b"0.3", b"1", b"1.0 ", b"2.0"])
def test_bad_specversion(value: bytes) -> None:
    assert reason_of(replaced("ce_specversion", value)) == BAD_SPECVERSION


@pytest.mark.parametrize(
    "value",
    [
        b"yesterday",
        b"2024-05-01T12:00:00",
        b"2024-13-01T12:00:00Z",
        b"01-05-2024 12:00",
        b"2024-05-01T25:00Z",
    ],
)
def test_bad_time(value: bytes) -> None:
    assert reason_of(replaced("ce_time", value)) == BAD_TIME


def test_parse_time_directly() -> None:
    assert parse_time("2024-05-01T12:00:00.123Z") == T
    with pytest.raises(EnvelopeError) as excinfo:
        parse_time("2024-05-01")
    assert excinfo.value.reason == BAD_TIME


@pytest.mark.parametrize(
    "value",
    [
        b"nl.ketenbus.melding.bogus",
        b"nl.ketenbus.bogus.ontvangen",
        b"com.example.event",
        b"Melding",
        b"melding",
    ],
)
def test_unknown_type(value: bytes) -> None:
    assert reason_of(replaced("ce_type", value)) == UNKNOWN_TYPE


@pytest.mark.parametrize("value", [b"application/json", b"application/cloudevents+json", b"text/plain"])
def test_bad_content_type(value: bytes) -> None:
    assert reason_of(replaced("content-type", value)) == BAD_CONTENT_TYPE


def test_content_type_may_be_absent() -> None:
    assert Envelope.from_headers(without("content-type")) == VALID


@pytest.mark.parametrize(
    "source",
    [
        "urn:nld:ketenbus:partner:nobody",
        "urn:nld:ketenbus:partner:",
        "urn:nld:ketenbus:partner:veilig_thuis",  # the Avro symbol, not the partner id
        "urn:nld:ketenbus:partner:politie/extra",
        "https://politie.nl",
        "politie",
        "",
    ],
)
def test_bad_source(source: str) -> None:
    with pytest.raises(EnvelopeError) as excinfo:
        partner_of(source)
    assert excinfo.value.reason == BAD_SOURCE
    env = Envelope.from_headers(replaced("ce_source", source.encode() or None)) if source else None
    if env is not None:
        # The headers parse; the source is refused when the partner is asked for.
        with pytest.raises(EnvelopeError) as again:
            _ = env.partner
        assert again.value.reason == BAD_SOURCE


@pytest.mark.parametrize("partner", PRODUCERS)
def test_every_producer_has_a_source(partner: str) -> None:
    assert source_for(partner) == f"{SOURCE_PREFIX}{partner}"
    assert partner_of(source_for(partner)) == partner


def test_the_bus_is_a_producer_but_not_a_partner() -> None:
    assert "ketenbus" not in PARTNERS
    assert partner_of(source_for("ketenbus")) == "ketenbus"


@pytest.mark.parametrize("key", ["ce_subject", "ce_id", "ketenbus_grondslag", "content-type"])
def test_non_utf8_header(key: str) -> None:
    headers = [(k, b"\xff\xfe" if k == key else v) for k, v in valid_headers()]
    assert reason_of(headers) == BAD_HEADER


def test_reasons_are_distinct() -> None:
    reasons = [MISSING, BAD_SPECVERSION, BAD_TIME, UNKNOWN_TYPE, BAD_SOURCE, BAD_CONTENT_TYPE, BAD_HEADER]
    assert len(set(reasons)) == len(reasons)
    assert all(r.startswith("envelope.") for r in reasons)


_KEYS = [*REQUIRED, "content-type", "ketenbus_grondslag", "x"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_KEYS), st.one_of(st.none(), st.binary(max_size=30))),
        max_size=10,
    ),
    st.booleans(),
)
def test_arbitrary_headers_give_an_envelope_or_envelope_error(
    noise: list[tuple[str, bytes | None]], on_valid: bool
) -> None:
    headers = [*valid_headers(), *noise] if on_valid else noise
    try:
        env = Envelope.from_headers(headers)
    except EnvelopeError as exc:
        assert exc.reason in (MISSING, BAD_SPECVERSION, BAD_TIME, UNKNOWN_TYPE, BAD_CONTENT_TYPE, BAD_HEADER)
    else:
        assert env.id and env.subject and env.time.tzinfo is not None


# -- header() ------------------------------------------------------------------------------


def test_header_lookup() -> None:
    headers = [*valid_headers(), ("raw", b"\xff"), ("none", None)]
    assert header(headers, "ce_subject") == "ZAAK-1"
    assert header(headers, "absent") is None
    assert header(headers, "none") is None
    assert header(headers, "raw") == "\ufffd"
    assert header(None, "ce_subject") is None


def test_constants() -> None:
    assert SPECVERSION == "1.0"
    assert CONTENT_TYPE == "application/avro"
