"""The Python client for partner systems (kafka-python).

    from connectors.client import Client
    from schemas.models import Zsm

    with Client("politie", bootstrap="kafka:9092") as bus:
        bus.publish(Zsm(stap="zaak_aangemeld", zaak_ref="Z-2026-0042", tijdstip=now))
        for delivery in bus.outbox():
            handle(delivery.event, delivery.grondslag, delivery.doel)

`publish` fills in the envelope (id, source, type, time, subject) and returns once the broker
acknowledged the write. `outbox()` yields each delivery once (an id seen before is skipped)
and commits a record's offset only after the loop body for it has finished: if the handler
raises, or the process dies, the delivery comes again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from types import TracebackType

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from connectors.outbox import Delivery, decode_delivery
from schemas import default_codec
from schemas.envelope import Envelope
from schemas.models import EventModel, to_avro
from schemas.registry import PARTNERS, family
from streams import topics
from streams.router import SeenIds
from streams.settings import Settings
from streams.validation import check_event

log = logging.getLogger(__name__)


class Client:
    def __init__(
        self,
        partner: str,
        bootstrap: str | None = None,
        *,
        group_id: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        if partner not in PARTNERS:
            raise ValueError(f"{partner!r} is not a partner (one of {', '.join(PARTNERS)})")
        from streams.lag import client_kwargs

        self.settings = settings or Settings()
        self.bootstrap = bootstrap or self.settings.bootstrap
        if not self.bootstrap:
            raise ValueError("give bootstrap (or KETENBUS_BOOTSTRAP)")
        self.partner = partner
        self.group_id = group_id or f"{partner}-ketenbus-client"
        self._kafka = client_kwargs(self.settings)
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None
        self.codec = default_codec()
        self.seen = SeenIds(100_000)

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        event: EventModel,
        *,
        id: str | None = None,
        time: dt.datetime | None = None,
        timeout: float = 10,
    ) -> str:
        """Write `event` to the own inbox; returns its id once the broker acknowledged it.
        Raises streams.validation.Rejection for an event the router would dead-letter."""
        fam = family(type(event).__name__)
        datum = to_avro(event)
        when = time or datum.get("tijdstip") or dt.datetime.now(dt.UTC)
        env = Envelope.new(self.partner, fam.ce_type(datum["stap"]), datum["zaak_ref"], when)
        if id is not None:
            env = Envelope(id, env.source, env.type, env.time, env.subject)
        check_event(self.partner, self.partner, env.type, env.subject, fam, datum)
        value = self.codec.encode(fam.name, datum)
        future = self.producer.send(
            topics.inbox(self.partner), key=env.subject.encode(), value=value, headers=env.to_headers()
        )
        future.get(timeout=timeout)
        return env.id

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=2, **self._kafka
            )
        return self._producer

    # -- the outbox ---------------------------------------------------------------------------

    def outbox(self, *, idle_timeout: float | None = None) -> Iterator[Delivery]:
        """Deliveries to this partner, in order per case. Stops after `idle_timeout` seconds
        without a record (None: never). A record is committed once the caller asks for the
        next one, i.e. after its loop body returned; leaving the loop (break or an exception)
        leaves the current delivery uncommitted, so it comes again: at-least-once."""
        consumer = self.consumer
        quiet_since = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=200, max_records=100)
            if not batch:
                if not consumer.assignment():  # still joining the group: not quiet yet
                    quiet_since = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - quiet_since > idle_timeout:
                    return
                continue
            quiet_since = time.monotonic()
            for tp, records in batch.items():
                for r in records:
                    delivery = decode_delivery(r.topic, r.partition, r.offset, r.value, r.headers, self.codec)
                    if delivery.id in self.seen:
                        log.info("duplicate delivery skipped", extra={"topic": r.topic, "offset": r.offset})
                    else:
                        yield delivery
                        self.seen.add(delivery.id)
                    self._commit(tp, r.offset + 1)

    def _commit(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                topics.outbox(self.partner),
                bootstrap_servers=self.bootstrap,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=int(self.settings.session_timeout_s * 1000),
                heartbeat_interval_ms=int(self.settings.heartbeat_interval_s * 1000),
                max_poll_interval_ms=300_000,
                **self._kafka,
            )
        return self._consumer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        if self._consumer is not None:
            self._consumer.close(autocommit=False)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
