"""What the bus must do with a set of inbox records, computed by the pure router.

The router core is a pure function, so the expected outcome of any input — which outboxes get
which event, or which DLQ reason — is known without a broker. Resilience tests compare what the
running bus did, under faults, with this oracle.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas import default_codec
from schemas.envelope import Envelope, fields_of, header, source_for
from schemas.registry import BUS
from streams import policy as policy_mod
from streams import topics
from streams.router import InRecord, Router
from streams.settings import Settings
from tests.bus import Seen
from tests.samples import every_step, producer_of, sample

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@dataclass
class Expected:
    #: ce_id -> the outbox topics it must reach
    deliveries: dict[str, set[str]] = field(default_factory=dict)
    #: record key -> DLQ reason, for records that must be dead-lettered
    dead: dict[bytes, str] = field(default_factory=dict)
    #: (ce_id, outbox) -> the fields the policy releases there
    fields: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)


def oracle(records: Iterable[InRecord]) -> Expected:
    router = Router(policy_mod.load(Settings().policy_file))
    expected = Expected()
    for rec in records:
        outcome = router.route(rec)
        if outcome.dead_letter is not None:
            assert rec.key is not None
            expected.dead[rec.key] = outcome.dead_letter
            continue
        env = Envelope.from_headers(rec.headers)
        outboxes = [r for r in outcome.records if r.topic in topics.OUTBOXES]
        expected.deliveries[env.id] = {r.topic for r in outboxes}
        for r in outboxes:
            expected.fields[(env.id, r.topic)] = fields_of(r.headers) or frozenset()
    return expected


def leaks(outbox_records: Sequence[Seen], expected: Expected) -> list[tuple[str, str, list[str]]]:
    """Outbox records carrying a field (in their bytes) the policy did not release there."""
    found = []
    for s in outbox_records:
        ce_id = header(s.headers, "ce_id") or ""
        allowed = expected.fields.get((ce_id, s.topic))
        if allowed is None:
            continue  # not a partner's event: the oracle has no say (an escalation)
        fam, record = default_codec().decode(s.value, resolve=False, fields_hint=fields_of(s.headers))
        extra = set(record) - allowed - fam.required_fields
        if extra:
            found.append((ce_id, s.topic, sorted(extra)))
    return found


def valid_events(n: int, rng: random.Random, prefix: str) -> list[InRecord]:
    """`n` valid events of every family and step, each its own case."""
    steps = every_step()
    out = []
    for i in range(n):
        family, step = steps[rng.randrange(len(steps))]
        partner = producer_of(family, step)
        zaak = f"{prefix}-{i}"
        datum = sample(family, step, zaak, tijdstip=T0 + dt.timedelta(minutes=i))
        env = Envelope.new(partner, f"nl.ketenbus.{family.lower()}.{step}", zaak, datum["tijdstip"])
        out.append(
            InRecord(
                topics.inbox(partner),
                0,
                0,
                zaak.encode(),
                default_codec().encode(family, datum),
                env.to_headers(),
            )
        )
    return out


def delivered(outbox_records: Sequence[Seen]) -> dict[str, Counter[str]]:
    """ce_id -> how often each outbox got it, for partners' events (the bus's own escalations,
    from the timer worker's red flags, are not inbox records the oracle routes)."""
    got: dict[str, Counter[str]] = defaultdict(Counter)
    for s in outbox_records:
        ce_id = header(s.headers, "ce_id")
        if ce_id and header(s.headers, "ce_source") != source_for(BUS):
            got[ce_id][s.topic] += 1
    return got
