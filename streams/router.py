"""The router's core: one inbox record in, the records it causes out. No Kafka in here.

For a valid event: the canonical copy on `keten.events`, one projected record per recipient the
policy allows on `keten.out.<recipient>` (only the released fields are in the bytes), and one
`Verstrekking` per delivery. For anything else: one `DeadLetter` with a reason code. The worker
in `streams.router_worker` feeds batches through `Router.route_batch` and writes what it returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from schemas.codec import Codec, CodecError, default_codec
from schemas.envelope import Envelope, EnvelopeError, Headers
from schemas.registry import PARTNERS, family
from streams import metrics, topics
from streams.policy import Decision, Policy
from streams.validation import DUPLICATE, Rejection, check_event

log = logging.getLogger(__name__)

# Stable namespace for ids the bus derives (verstrekking ids, dead-letter ids).
ID_NAMESPACE = uuid.UUID("7c6f2b8e-5d0a-4c1e-9a57-6b2f0f3d8a11")
VERSTREKKING = family("Verstrekking")
VERSTREKKING_TYPE = VERSTREKKING.ce_type(VERSTREKKING.steps[0])
_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def derived_id(name: str) -> str:
    """`str(uuid.uuid5(ID_NAMESPACE, name))`, without building a UUID object (a fifth of the
    cost of a delivery's register record)."""
    b = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


DEADLETTER = family("DeadLetter")


@dataclass(frozen=True)
class InRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass
class Outcome:
    """What routing one record produced, for metrics and tests."""

    records: list[OutRecord]
    family: str | None = None
    ce_type: str | None = None
    partner: str | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)
    dead_letter: str | None = None  # reason code
    ce_time: dt.datetime | None = None


class SeenIds:
    """The ce_ids routed recently, bounded (oldest forgotten first)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, ce_id: str) -> bool:
        return ce_id in self._ids

    def add(self, ce_id: str) -> bool:
        """True when `ce_id` is new."""
        if ce_id in self._ids:
            return False
        self._ids[ce_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Router:
    def __init__(
        self,
        policy: Policy,
        codec: Codec | None = None,
        clock: Callable[[], dt.datetime] = _now,
        seen: SeenIds | None = None,
    ) -> None:
        self.policy = policy
        self.codec = codec or default_codec()
        self.clock = clock
        self.seen = seen or SeenIds()
        # Verstrekking records are built here from checked values: no need to validate each.
        self._verstrekking_writer = self.codec.projection(VERSTREKKING, VERSTREKKING.field_names)
        self._released_cache: dict[Decision, tuple[list[str], Headers]] = {}

    def route_batch(self, batch: Iterable[InRecord]) -> list[Outcome]:
        outcomes = [self.route(rec) for rec in batch]
        metrics.observe_outcomes(outcomes)
        return outcomes

    def route(self, rec: InRecord) -> Outcome:
        try:
            return self._accept(rec)
        except (EnvelopeError, CodecError, Rejection) as exc:
            reason = exc.reason
            detail = exc.detail
        except Exception as exc:  # never let one record stop the stream
            log.exception("unexpected error routing a record", extra={"topic": rec.topic})
            reason, detail = "router.internal_error", type(exc).__name__
        log.info("dead-lettered", extra={"reason": reason, "topic": rec.topic, "offset": rec.offset})
        return Outcome(records=[self._dead_letter(rec, reason, detail)], dead_letter=reason)

    def _accept(self, rec: InRecord) -> Outcome:
        env = Envelope.from_headers(rec.headers)
        inbox_partner = topics.partner_of_inbox(rec.topic)
        source_partner = env.partner
        fam, record = self.codec.decode(rec.value or b"", resolve=True)
        check_event(inbox_partner, source_partner, env.type, env.subject, fam, record)
        if not self.seen.add(env.id):
            raise Rejection(DUPLICATE, "ce_id was routed before")
        ce_type = fam.ce_type(record["stap"])
        key = env.subject.encode()
        base_headers = env.to_headers()
        out = [OutRecord(topics.EVENTS, key, rec.value or b"", base_headers)]
        recipients = [p for p in PARTNERS if p != source_partner]
        decisions = self.policy.decide(fam, ce_type, record, recipients)
        now = self.clock()
        persons: list[str] | None = None
        register_headers: Headers = []
        for recipient, decision in decisions.items():
            if not decision.allowed:
                continue
            value = self.codec.encode_projected(fam, decision.fields, record, validate=False)
            fields, policy_headers = self._released(decision)
            out.append(OutRecord(topics.outbox(recipient), key, value, [*base_headers, *policy_headers]))
            if persons is None:  # the same for every delivery of this event
                persons = sorted({p["persoon_ref"] for p in record.get("persoon_refs") or ()})
                register_headers = Envelope.from_bus("", VERSTREKKING_TYPE, now, env.subject).to_headers()
            out.append(self._verstrekking(env, ce_type, persons, decision, fields, now, register_headers))
        return Outcome(
            records=out,
            family=fam.name,
            ce_type=ce_type,
            partner=source_partner,
            decisions=decisions,
            ce_time=env.time,
        )

    def _released(self, decision: Decision) -> tuple[list[str], Headers]:
        """The sorted released fields of `decision` and the headers that say why (cached: the
        policy makes few distinct decisions)."""
        cached = self._released_cache.get(decision)
        if cached is None:
            fields = sorted(decision.fields)
            headers: Headers = [
                ("ketenbus_grondslag", decision.grondslag.encode()),
                ("ketenbus_doel", decision.doel.encode()),
                ("ketenbus_policy_version", self.policy.version.encode()),
                ("ketenbus_rules", ",".join(decision.rules).encode()),
                ("ketenbus_fields", ",".join(fields).encode()),
            ]
            cached = self._released_cache[decision] = (fields, headers)
        return cached

    def _verstrekking(
        self,
        env: Envelope,
        ce_type: str,
        persons: list[str],
        decision: Decision,
        fields: list[str],
        now: dt.datetime,
        headers: Headers,
    ) -> OutRecord:
        """The register record of one delivery; `headers` are its envelope's but for the id."""
        vid = derived_id(f"verstrekking/{env.id}/{decision.recipient}")
        datum = {
            "verstrekking_id": vid,
            "event_id": env.id,
            "event_type": ce_type,
            "zaak_ref": env.subject,
            "persoon_refs": persons,
            "ontvanger": decision.recipient.replace("-", "_"),
            "velden": fields,
            "regel": ",".join(decision.rules),
            "grondslag": decision.grondslag,
            "doel": decision.doel,
            "policy_versie": self.policy.version,
            "tijdstip": now,
        }
        return OutRecord(
            topics.VERSTREKKINGEN,
            env.subject.encode(),
            self.codec.encode_with(self._verstrekking_writer, datum, validate=False),
            [("ce_id", vid.encode()) if k == "ce_id" else (k, v) for k, v in headers],
        )

    def _dead_letter(self, rec: InRecord, reason: str, detail: str) -> OutRecord:
        return self.dead_letter_record(self.codec, rec, reason, detail, self.clock())

    @staticmethod
    def dead_letter_record(
        codec: Codec, rec: InRecord, reason: str, detail: str, now: dt.datetime
    ) -> OutRecord:
        """The `keten.dlq` record for `rec`: the original bytes and headers, and why."""
        dlq_id = derived_id(f"dlq/{rec.topic}/{rec.partition}/{rec.offset}")
        datum = {
            "reden": reason,
            "detail": detail,
            "bron_topic": rec.topic,
            "bron_partitie": rec.partition,
            "bron_offset": rec.offset,
            "headers": [{"key": k, "value": v} for k, v in rec.headers or ()],
            "sleutel": rec.key,
            "waarde": rec.value,
            "tijdstip": now,
        }
        meta = Envelope.from_bus(
            dlq_id,
            DEADLETTER.ce_type(DEADLETTER.steps[0]),
            now,
            (rec.key or b"").decode("utf-8", "replace") or "onbekend",
            ketenbus_reden=reason,
        )
        return OutRecord(topics.DLQ, rec.key, codec.encode(DEADLETTER.name, datum), meta.to_headers())
