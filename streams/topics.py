"""Every topic of the bus, defined once (DESIGN.md §4).

Provisioning, the AsyncAPI document and the deploy manifests are all derived from `TOPICS`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from schemas.registry import BUS, PARTNERS

EVENTS = "keten.events"
VERSTREKKINGEN = "keten.verstrekkingen"
DLQ = "keten.dlq"
KLOK = "keten.klok"
RADAR = "keten.radar"


def inbox(partner: str) -> str:
    return f"keten.in.{partner}"


def outbox(partner: str) -> str:
    return f"keten.out.{partner}"


def partner_of_inbox(topic: str) -> str:
    if not topic.startswith("keten.in."):
        raise ValueError(f"{topic} is not an inbox")
    return topic[len("keten.in.") :]


WEEK_MS = 7 * 24 * 3600 * 1000
YEAR_MS = 365 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    purpose: str
    partitions: int | None = None  # None: the configured default
    config: dict[str, str] = field(default_factory=dict)
    writer: str | None = None  # the partner allowed to write (ACLs); None: the bus only
    reader: str | None = None  # the partner allowed to read; None: the bus only

    def partition_count(self, default: int) -> int:
        return self.partitions or default


def _topics() -> tuple[Topic, ...]:
    topics: list[Topic] = []
    for p in (*PARTNERS, BUS):
        topics.append(
            Topic(
                inbox(p),
                f"Events published by {p}; read only by the router.",
                config={"retention.ms": str(4 * WEEK_MS)},
                writer=p if p != BUS else None,
            )
        )
    for p in PARTNERS:
        topics.append(
            Topic(
                outbox(p),
                f"What {p} may lawfully see, with grondslag and doel headers.",
                config={"retention.ms": str(4 * WEEK_MS)},
                reader=p,
            )
        )
    topics += [
        Topic(EVENTS, "Validated canonical events, key = case reference; the timers read it."),
        Topic(
            VERSTREKKINGEN,
            "One Verstrekking record per disclosure: the disclosure register.",
            config={"retention.ms": str(YEAR_MS)},
        ),
        Topic(DLQ, "Rejected input with a reason code and the original bytes and headers."),
        Topic(KLOK, "Log of the virtual clock: every tick a replay driver gave.", partitions=1),
        Topic(RADAR, "Meldingen repartitioned by persoon_ref for the radar pattern (internal)."),
    ]
    return tuple(topics)


TOPICS: tuple[Topic, ...] = _topics()
INBOXES = tuple(t.name for t in TOPICS if t.name.startswith("keten.in."))
OUTBOXES = tuple(t.name for t in TOPICS if t.name.startswith("keten.out."))


def provision(bootstrap: str, default_partitions: int, replication: int = 1, **client: object) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Idempotent."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ketenbus-provision", **client)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(t.name, t.partition_count(default_partitions), replication, topic_configs=dict(t.config))
            for t in TOPICS
            if t.name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent provisioner won the race
                admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        admin.close()
