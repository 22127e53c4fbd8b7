"""What a partner receives: one outbox record decoded into a typed delivery.

Shared by the Python client and the webhook egress, so both hand a partner the same thing:
the event's CloudEvents attributes, the released fields as a pydantic model of exactly those
fields, and the legal basis (grondslag), purpose (doel) and policy version of the disclosure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.codec import Codec, default_codec
from schemas.envelope import Envelope, fields_of, format_time, header
from schemas.models import EventModel, projection_model


@dataclass(frozen=True)
class Delivery:
    """One event as delivered to one partner."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope
    family: str
    event: EventModel  # only the released fields; a field not released is not an attribute
    grondslag: str
    doel: str
    policy_version: str

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def zaak_ref(self) -> str:
        return self.envelope.subject

    def to_cloudevent(self) -> dict[str, Any]:
        """The delivery as a structured-mode JSON CloudEvent, the disclosure's basis as
        extension attributes (lowercase alphanumeric names, as CloudEvents requires)."""
        return {
            "specversion": "1.0",
            "id": self.envelope.id,
            "source": self.envelope.source,
            "type": self.envelope.type,
            "time": format_time(self.envelope.time),
            "subject": self.envelope.subject,
            "datacontenttype": "application/json",
            "ketenbusgrondslag": self.grondslag,
            "ketenbusdoel": self.doel,
            "ketenbuspolicyversion": self.policy_version,
            "data": self.event.model_dump(mode="json"),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_cloudevent(), ensure_ascii=False, separators=(",", ":")).encode()


def decode_delivery(
    topic: str,
    partition: int,
    offset: int,
    value: bytes,
    headers: Sequence[tuple[str, bytes | None]] | None,
    codec: Codec | None = None,
) -> Delivery:
    """Decode an outbox record; raises EnvelopeError, CodecError or pydantic's ValidationError."""
    codec = codec or default_codec()
    env = Envelope.from_headers(headers)
    released = fields_of(headers)
    fam, record = codec.decode(value, resolve=released is None, fields_hint=released)
    model = projection_model(fam.name, frozenset(record) if released is None else released)
    return Delivery(
        topic=topic,
        partition=partition,
        offset=offset,
        envelope=env,
        family=fam.name,
        event=model.model_validate(record),
        grondslag=header(headers, "ketenbus_grondslag") or "",
        doel=header(headers, "ketenbus_doel") or "",
        policy_version=header(headers, "ketenbus_policy_version") or "",
    )
