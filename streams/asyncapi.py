"""The AsyncAPI 3.0 document of the bus, generated from the topic and schema definitions.

One channel per partner inbox and outbox; each partner's operations are `send` to its inbox
and `receive` from its outbox. Payloads are the Avro schemas themselves
(`application/vnd.apache.avro+json;version=1.9.0`); the CloudEvents attributes are headers.
"""

from __future__ import annotations

from typing import Any

from schemas.registry import BUS, PARTNER_FAMILIES, PARTNERS, Family, families
from streams import topics

AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"

CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "Unique event id; the bus delivers each id once."},
        "ce_source": {
            "type": "string",
            "description": "urn:nld:ketenbus:partner:<partner>; must be the inbox owner.",
        },
        "ce_type": {"type": "string", "description": "nl.ketenbus.<family>.<stap>"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {
            "type": "string",
            "description": "The case reference (zaak_ref), also the record key.",
        },
        "content-type": {"type": "string", "const": "application/avro"},
    },
}
OUTBOX_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": [*CE_HEADERS["required"], "ketenbus_grondslag", "ketenbus_doel", "ketenbus_policy_version"],
    "properties": {
        **CE_HEADERS["properties"],
        "ketenbus_grondslag": {"type": "string", "description": "Legal basis of this disclosure."},
        "ketenbus_doel": {"type": "string", "description": "Purpose of this disclosure."},
        "ketenbus_policy_version": {"type": "string"},
        "ketenbus_rules": {
            "type": "string",
            "description": "Comma-separated ids of the policy rules applied.",
        },
        "ketenbus_fields": {
            "type": "string",
            "description": "Comma-separated released fields: the writer schema is the family schema "
            "projected onto these fields (absent fields take their defaults).",
        },
    },
}


def _message_id(fam: Family, step: str, outbox: bool = False) -> str:
    return f"{fam.slug}.{step}{'.outbox' if outbox else ''}"


def document(version: str = "0.1.0") -> dict[str, Any]:
    fams = families()
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for fam in fams.values():
        schemas[fam.name] = {"schemaFormat": AVRO_FORMAT, "schema": fam.schema}
        for step in fam.steps:
            for outbox in (False, True):
                messages[_message_id(fam, step, outbox)] = {
                    "name": fam.ce_type(step),
                    "title": f"{fam.name} {step}"
                    + (" (as delivered: released fields only)" if outbox else ""),
                    "contentType": "application/avro",
                    "headers": {
                        "$ref": f"#/components/schemas/{'OutboxHeaders' if outbox else 'CloudEventHeaders'}"
                    },
                    "payload": {"$ref": f"#/components/schemas/{fam.name}"},
                }

    def refs(names: list[str], outbox: bool = False) -> dict[str, Any]:
        return {
            _message_id(fams[n], s, outbox): {
                "$ref": f"#/components/messages/{_message_id(fams[n], s, outbox)}"
            }
            for n in names
            for s in fams[n].steps
        }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for partner in PARTNERS:
        produced = [n for n in PARTNER_FAMILIES if any(partner in ps for ps in fams[n].producers.values())]
        cid_in, cid_out = f"in-{partner}", f"out-{partner}"
        channels[cid_in] = {
            "address": topics.inbox(partner),
            "description": f"Inbox of {partner}: the only topic {partner} may write.",
            "messages": refs(produced),
        }
        channels[cid_out] = {
            "address": topics.outbox(partner),
            "description": f"Outbox of {partner}: what {partner} may lawfully see, with grondslag and doel.",
            "messages": refs([*PARTNER_FAMILIES, "Escalatie"], outbox=True),
        }
        operations[f"{partner}-publish"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid_in}"},
            "summary": f"{partner} publishes its case events.",
        }
        operations[f"{partner}-receive"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid_out}"},
            "summary": f"{partner} receives the events the policy releases to it.",
        }
    channels[f"in-{BUS}"] = {
        "address": topics.inbox(BUS),
        "description": "Escalations raised by the bus's timers, routed like any other event.",
        "messages": refs(["Escalatie"]),
    }
    for topic, fam_name in ((topics.VERSTREKKINGEN, "Verstrekking"), (topics.DLQ, "DeadLetter")):
        channels[topic.replace(".", "-")] = {
            "address": topic,
            "description": next(t.purpose for t in topics.TOPICS if t.name == topic),
            "messages": refs([fam_name]),
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ketenbus",
            "version": version,
            "description": "Event bus of the Dutch chain approach against domestic violence, child abuse "
            "and harmful practices. Values are Avro single-object encoded (C3 01 + CRC-64-AVRO fingerprint "
            "+ datum); headers are CloudEvents binary mode (NL GOV profile).",
        },
        "defaultContentType": "application/avro",
        "servers": {
            "embedded": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "ketenbus broker"},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {**schemas, "CloudEventHeaders": CE_HEADERS, "OutboxHeaders": OUTBOX_HEADERS},
            "messages": messages,
        },
    }
