"""A catalogue of bad inbox records, one per kind of rejection, each with its reason code.

Used by the pure router tests and by the integration test on the real broker, so both check
the same classes of bad input.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from schemas import Envelope, default_codec
from schemas.envelope import Headers
from streams import topics

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Bad:
    name: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    reason: str


def _valid(zaak: str, partner: str, family: str, datum: dict[str, Any]) -> tuple[bytes, Envelope]:
    datum = {"zaak_ref": zaak, "tijdstip": T0, **datum}
    env = Envelope.new(partner, f"nl.ketenbus.{family.lower()}.{datum['stap']}", zaak, T0)
    return default_codec().encode(family, datum), env


def catalogue(zaak: str) -> list[Bad]:
    """Every bad-input class for case `zaak` (all records keyed by it)."""
    key = zaak.encode()
    melding, env = _valid(zaak, "veilig-thuis", "Melding", {"stap": "ontvangen", "acuut": True})
    headers = env.to_headers()
    inbox = topics.inbox("veilig-thuis")

    def hv(stap: str, days: float, partner: str = "gemeente", **extra: Any) -> tuple[bytes, Headers]:
        value, e = _valid(
            zaak,
            partner,
            "Huisverbod",
            {"stap": stap, "ingangsdatum": T0, "einddatum": T0 + dt.timedelta(days=days), **extra},
        )
        return value, e.to_headers()

    too_long, h1 = hv("opgelegd", 11)
    verlengd_29, h2 = hv("verlengd", 29)
    minor, h3 = hv("opgelegd", 10, pleger_meerderjarig=False)
    verlengd_by_police, h4 = hv("verlengd", 20, partner="politie")
    ends_before, h5 = hv("opgelegd", -1)
    alarm_no_kind, e6 = _valid(
        zaak, "alarmcentrale", "SlachtofferdeviceAlert", {"stap": "alarm", "alarm_id": "A"}
    )

    def with_header(name: str, value: bytes) -> Headers:
        return [(k, value if k == name else v) for k, v in headers]

    unknown_fp = melding[:2] + b"\x00" * 8 + melding[10:]
    return [
        Bad("empty value", inbox, key, b"", headers, "codec.empty"),
        Bad("random bytes", inbox, key, b"\x17" + os.urandom(40), headers, "codec.not_single_object"),
        Bad("wrong magic", inbox, key, b"\xc3\x02" + melding[2:], headers, "codec.bad_magic"),
        Bad("header truncated", inbox, key, melding[:6], headers, "codec.header_truncated"),
        Bad("unknown fingerprint", inbox, key, unknown_fp, headers, "codec.unknown_fingerprint"),
        Bad("body truncated", inbox, key, melding[:-4], headers, "codec.body_truncated"),
        Bad("trailing bytes", inbox, key, melding + b"\x00\x01", headers, "codec.trailing_bytes"),
        Bad("no headers", inbox, key, melding, [], "envelope.missing_attribute"),
        Bad(
            "bad specversion",
            inbox,
            key,
            melding,
            with_header("ce_specversion", b"0.3"),
            "envelope.bad_specversion",
        ),
        Bad("bad time", inbox, key, melding, with_header("ce_time", b"gisteren"), "envelope.bad_time"),
        Bad(
            "unknown type",
            inbox,
            key,
            melding,
            with_header("ce_type", b"nl.ketenbus.x.y"),
            "envelope.unknown_type",
        ),
        Bad(
            "type of another family",
            inbox,
            key,
            melding,
            with_header("ce_type", b"nl.ketenbus.zsm.advies"),
            "envelope.type_mismatch",
        ),
        Bad(
            "subject differs from zaak_ref",
            inbox,
            key,
            melding,
            with_header("ce_subject", b"other-case"),
            "envelope.subject_mismatch",
        ),
        Bad(
            "spoofed source (politie writes as veilig-thuis)",
            topics.inbox("politie"),
            key,
            melding,
            headers,
            "envelope.source_mismatch",
        ),
        Bad(
            "source is not a partner",
            inbox,
            key,
            melding,
            with_header("ce_source", b"urn:nld:ketenbus:partner:onbekend"),
            "envelope.bad_source",
        ),
        Bad(
            "huisverbod opgelegd for 11 days",
            topics.inbox("gemeente"),
            key,
            too_long,
            h1,
            "semantiek.huisverbod_too_long",
        ),
        Bad(
            "huisverbod verlengd to 29 days",
            topics.inbox("gemeente"),
            key,
            verlengd_29,
            h2,
            "semantiek.huisverbod_too_long",
        ),
        Bad("huisverbod on a minor", topics.inbox("gemeente"), key, minor, h3, "semantiek.huisverbod_minor"),
        Bad(
            "huisverbod verlengd by politie",
            topics.inbox("politie"),
            key,
            verlengd_by_police,
            h4,
            "semantiek.producer_not_allowed",
        ),
        Bad(
            "huisverbod ends before it starts",
            topics.inbox("gemeente"),
            key,
            ends_before,
            h5,
            "semantiek.huisverbod_ends_before_start",
        ),
        Bad(
            "alarm without kind",
            topics.inbox("alarmcentrale"),
            key,
            alarm_no_kind,
            e6.to_headers(),
            "semantiek.field_missing",
        ),
    ]
