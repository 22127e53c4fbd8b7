"""CloudEvents binary mode on Kafka headers, following the NL GOV profile for CloudEvents.

The event's attributes travel as `ce_*` headers beside the Avro value; outbox records add the
legal basis, purpose and policy version of the disclosure as `ketenbus_*` headers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from schemas.registry import BUS, PRODUCERS, resolve_type

SPECVERSION = "1.0"
CONTENT_TYPE = "application/avro"
SOURCE_PREFIX = "urn:nld:ketenbus:partner:"

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """Headers that do not form a valid ketenbus CloudEvent. `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


MISSING = "envelope.missing_attribute"
BAD_SPECVERSION = "envelope.bad_specversion"
BAD_TIME = "envelope.bad_time"
UNKNOWN_TYPE = "envelope.unknown_type"
BAD_SOURCE = "envelope.bad_source"
BAD_CONTENT_TYPE = "envelope.bad_content_type"
BAD_HEADER = "envelope.bad_header"

OWN_HEADER_PREFIXES = ("ce_", "content-type", "ketenbus_")
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject")


def source_for(partner: str) -> str:
    """The `source` URI of a partner: `urn:nld:ketenbus:partner:politie`."""
    return f"{SOURCE_PREFIX}{partner}"


def partner_of(source: str) -> str:
    """The partner a `source` URI names; raises EnvelopeError when it names none."""
    if source.startswith(SOURCE_PREFIX):
        partner = source[len(SOURCE_PREFIX) :]
        if partner in PRODUCERS:
            return partner
    raise EnvelopeError(BAD_SOURCE, "source is not a known ketenbus partner URN")


def format_time(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("ce_time must be timezone-aware")
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(BAD_TIME, "ce_time is not RFC 3339") from None
    if t.tzinfo is None:
        raise EnvelopeError(BAD_TIME, "ce_time has no offset")
    return t


@dataclass(frozen=True)
class Envelope:
    """The CloudEvents context attributes of one event."""

    id: str
    source: str
    type: str
    time: dt.datetime
    subject: str  # the case reference (zaak_ref), also the Kafka key
    extensions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, partner: str, ce_type: str, subject: str, time: dt.datetime, **extensions: str) -> Envelope:
        return cls(
            id=str(uuid.uuid4()),
            source=source_for(partner),
            type=ce_type,
            time=time,
            subject=subject,
            extensions=extensions,
        )

    @classmethod
    def from_bus(cls, id: str, ce_type: str, time: dt.datetime, subject: str, **extensions: str) -> Envelope:
        """An event the bus itself writes (an escalation, a disclosure record, a dead letter)."""
        return cls(
            id=id, source=source_for(BUS), type=ce_type, time=time, subject=subject, extensions=extensions
        )

    @property
    def partner(self) -> str:
        return partner_of(self.source)

    def to_headers(self) -> Headers:
        headers: Headers = [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", format_time(self.time).encode()),
            ("ce_subject", self.subject.encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        headers.extend((k, v.encode()) for k, v in self.extensions.items())
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]] | None) -> Envelope:
        """Parse and check the headers of a Kafka record; raises EnvelopeError."""
        values: dict[str, str] = {}
        for key, raw in headers or ():
            if raw is None or not key.startswith(OWN_HEADER_PREFIXES):
                continue  # other headers (tracing, say) are not ours to judge
            try:
                values[key] = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
            except UnicodeDecodeError:
                raise EnvelopeError(BAD_HEADER, f"header {key!r} is not UTF-8") from None
        missing = [k for k in REQUIRED if not values.get(k)]
        if missing:
            raise EnvelopeError(MISSING, f"missing {', '.join(missing)}")
        if values["ce_specversion"] != SPECVERSION:
            raise EnvelopeError(BAD_SPECVERSION, f"specversion {values['ce_specversion'][:16]!r}")
        content_type = values.get("content-type", CONTENT_TYPE)
        if content_type != CONTENT_TYPE:
            raise EnvelopeError(BAD_CONTENT_TYPE, f"content-type {content_type[:40]!r}")
        try:
            fam, step = resolve_type(values["ce_type"])
        except KeyError:
            raise EnvelopeError(UNKNOWN_TYPE, "ce_type is not a ketenbus event type") from None
        ext = {k: v for k, v in values.items() if k.startswith("ketenbus_")}
        return cls(
            id=values["ce_id"],
            source=values["ce_source"],
            type=fam.ce_type(step),  # canonical, whichever accepted form the partner wrote
            time=parse_time(values["ce_time"]),
            subject=values["ce_subject"],
            extensions=ext,
        )


def header(headers: Sequence[tuple[str, bytes | None]] | None, key: str) -> str | None:
    """One header's value as text, or None."""
    for k, v in headers or ():
        if k == key and v is not None:
            return v.decode("utf-8", "replace")
    return None


def fields_of(headers: Sequence[tuple[str, bytes | None]] | None) -> frozenset[str] | None:
    """The fields released in an outbox record (its `ketenbus_fields` header); None when the
    record has no such header (it was written with a full family schema)."""
    value = header(headers, "ketenbus_fields")
    if value is None:
        return None
    return frozenset(f for f in value.split(",") if f)
