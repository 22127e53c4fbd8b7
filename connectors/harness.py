"""Drive a real bus from outside: the `ketenbus up` workers on the virtual clock, a reader of
topics, and `Bus`, which publishes inbox records, waits until the router took them, ticks the
virtual clock and collects what came out (keten.events, keten.dlq, every outbox).

Used by the demo (`workers`, `Reader`), by scenario replay and by replay of recordings.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.virtual_time import VirtualTime
from schemas.envelope import header
from streams import topics
from streams.broker import bootstrap_or_embedded, stop_process
from streams.clock import TICK_TYPE
from streams.settings import REPO_ROOT, Settings

ESCALATIE_PREFIX = "nl.ketenbus.escalatie."


@contextmanager
def workers(bootstrap: str, seed: int) -> Iterator[str]:
    """Router and timer worker in one `ketenbus up` process on the virtual clock; yields the
    metrics URL."""
    env = {
        **os.environ,
        "KETENBUS_BOOTSTRAP": bootstrap,
        "KETENBUS_CLOCK": "virtual",
        "KETENBUS_APP_ID": f"ketenbus-demo-{seed}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        "KETENBUS_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up", "--metrics-port", "0"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        metrics_url = ""
        for line in proc.stdout:
            if "metrics=" in line:
                metrics_url = line.split("metrics=", 1)[1].strip()
                break
        if not metrics_url:
            raise RuntimeError("the router/timer worker did not start")
        yield metrics_url
    finally:
        stop_process(proc, 30)


class Reader:
    """Reads topics from the beginning up to their current end, as often as asked."""

    def __init__(self, bootstrap: str, names: Iterable[str]) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, fetch_max_wait_ms=10
        )
        self.parts = [
            TopicPartition(t, p) for t in names for p in self.consumer.partitions_for_topic(t) or ()
        ]
        self.consumer.assign(self.parts)
        self.consumer.seek_to_beginning(*self.parts)

    def drain(self) -> list[Any]:
        ends = self.consumer.end_offsets(self.parts)
        got: list[Any] = []
        while any(self.consumer.position(tp) < end for tp, end in ends.items()):
            for records in self.consumer.poll(timeout_ms=200, max_records=5000).values():
                got.extend(records)
        return got

    def close(self) -> None:
        self.consumer.close()


@dataclass(frozen=True)
class Sent:
    """One record written to an inbox: its id (if it had one) and where it landed."""

    ce_id: str | None
    topic: str
    partition: int
    offset: int


class SettleTimeout(TimeoutError):
    pass


class Bus:
    """A bus with router and timer worker running on the virtual clock, driven from outside.

    Everything that comes out is kept: `events` (keten.events without clock ticks), `dead`
    (keten.dlq) and `delivered` (every keten.out.* record), as kafka-python ConsumerRecords.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self.clock = VirtualTime(bootstrap)
        self.ledger = Reader(bootstrap, [topics.EVENTS, topics.DLQ, *topics.OUTBOXES])
        self.events: list[Any] = []
        self.dead: list[Any] = []
        self.delivered: list[Any] = []
        self.routed: set[str] = set()
        self.dlq_sources: set[tuple[str, int, int]] = set()
        self.escalations = 0
        self.now: dt.datetime | None = last_tick(bootstrap)
        self.collect()
        self._baseline = self.escalations  # escalations already on a bus we did not start

    def close(self) -> None:
        self.producer.close()
        self.clock.close()
        self.ledger.close()

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> Sent:
        meta = self.producer.send(topic, key=key, value=value, headers=list(headers)).get(timeout=30)
        return Sent(header(list(headers), "ce_id"), topic, meta.partition, meta.offset)

    def collect(self) -> None:
        for m in self.ledger.drain():
            if m.topic == topics.DLQ:
                self.dead.append(m)
                self.dlq_sources.add(_dlq_source(m))
            elif m.topic == topics.EVENTS:
                ce_type = header(m.headers, "ce_type") or ""
                if ce_type == TICK_TYPE:
                    continue
                self.events.append(m)
                ce_id = header(m.headers, "ce_id")
                if ce_id:
                    self.routed.add(ce_id)
                if ce_type.startswith(ESCALATIE_PREFIX):
                    self.escalations += 1
            else:
                self.delivered.append(m)

    def settle(self, sent: Iterable[Sent], timeout: float = 60) -> None:
        """Wait until the router took every record in `sent` (routed onto keten.events or
        dead-lettered) and every escalation the clock fired so far."""
        todo = list(sent)
        deadline = time.monotonic() + timeout
        while True:
            self.collect()
            todo = [
                s
                for s in todo
                if not (s.ce_id and s.ce_id in self.routed)
                and (s.topic, s.partition, s.offset) not in self.dlq_sources
            ]
            if not todo and self.escalations - self._baseline >= self.clock.fired:
                # one more read: the router writes the outboxes before it commits the event
                return
            if time.monotonic() > deadline:
                raise SettleTimeout(f"the router did not take {len(todo)} record(s) in time: {todo[:3]}")
            time.sleep(0.005)

    def tick(self, now: dt.datetime, timeout: float = 60) -> int:
        """Advance the virtual clock (never back) and wait for the escalations it fired."""
        if self.now is not None and now <= self.now:
            return 0
        fired = self.clock.tick(now, timeout=timeout)
        self.now = now
        if fired:
            self.settle(())
        return fired


def _dlq_source(m: Any) -> tuple[str, int, int]:
    from schemas import default_codec

    _, datum = default_codec().decode(m.value)
    return (datum["bron_topic"], datum["bron_partitie"], datum["bron_offset"])


def last_tick(bootstrap: str) -> dt.datetime | None:
    """The virtual time of the latest tick on keten.klok, if any."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tp = TopicPartition(topics.KLOK, 0)
        if not consumer.partitions_for_topic(topics.KLOK):
            return None
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        if end == 0:
            return None
        consumer.seek(tp, end - 1)
        for records in iter(lambda: consumer.poll(timeout_ms=500).get(tp), None):
            for m in records:
                try:
                    return dt.datetime.fromtimestamp(json.loads(m.value)["now_ms"] / 1000, dt.UTC)
                except (ValueError, KeyError, TypeError):
                    return None
        return None
    finally:
        consumer.close()


@contextmanager
def running_bus(
    bootstrap: str | None = None, *, start_workers: bool | None = None, ready_at: dt.datetime | None = None
) -> Iterator[Bus]:
    """A `Bus`: on a fresh embedded broker with its own workers (the default), or on
    `bootstrap` (workers started only when `start_workers`; default: assume a running bus)."""
    settings = Settings()
    own_workers = start_workers if start_workers is not None else bootstrap is None
    with bootstrap_or_embedded(bootstrap) as server:
        topics.provision(server, settings.partitions)
        with workers(server, 0) if own_workers else _nothing() as _:
            bus = Bus(server)
            try:
                first = ready_at or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
                if bus.now is None or first > bus.now:
                    bus.tick(first, timeout=120)  # workers ready
                else:
                    bus.clock.tick(bus.now, timeout=120)
                yield bus
            finally:
                bus.close()


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""
