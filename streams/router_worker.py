"""The router's worker: the pure `Router` between an aiokafka consumer and producer.

Two lanes, each its own consumer group, consumer, producer, `Router`, thread and event loop:

- the **alarm lane** reads only `keten.in.alarmcentrale` (group `<app id>-router-alarm`), in
  small batches, so a device alarm never waits behind a backlog of other families: not in a
  fetch buffer, not in a producer queue, not behind a batch being routed. Sharing one event loop
  with the main lane cost an alarm about 150 ms under a backlog: each of the dozen steps of its
  way through aiokafka waited for a slice of the main lane's work;
- the **main lane** reads every other inbox (group `<app id>-router`) in batches of
  `router_batch_size`.

Per batch: route, write every output, wait until the broker acknowledged all of them, and only
then commit the batch's offsets (at-least-once). A worker killed in between leaves the batch
uncommitted; its successor routes it again, and the inbox records are never skipped.

Outputs are written as record batches (`send_batch`), one per topic partition, partitioned as
the Java client does (murmur2 of the key): one future per partition instead of one per record.
faust-streaming ran this before; it cost two thirds of the router's time per record, and it skips
records it fetched while its group settles after a restart (see the README's Performance section).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.partitioner import murmur2

from streams import lag, metrics, topics
from streams import policy as policy_mod
from streams.policy import Policy
from streams.router import InRecord, OutRecord, Router
from streams.settings import Settings

log = logging.getLogger(__name__)

ALARM_INBOX = topics.inbox("alarmcentrale")
MAIN_INBOXES = tuple(t for t in topics.INBOXES if t != ALARM_INBOX)
OUTPUTS = (topics.EVENTS, *topics.OUTBOXES, topics.VERSTREKKINGEN, topics.DLQ)
#: How long the broker may hold a fetch that has no data yet. An alarm arriving during the wait
#: can wait for all of it (the embedded broker holds the whole wait), so keep it short.
FETCH_MAX_WAIT_MS = 10
ALARM_BATCH = 50
#: Records a lane routes before it lets its client's own tasks run (fetches, heartbeats,
#: acknowledgements): about 20 ms of work.
CHUNK = 128
#: Records the writer appends to record batches before it lets the client's tasks run.
APPENDS_PER_YIELD = 1024
#: Upper bound of one record batch written to one partition (Kafka's default message.max.bytes
#: is 1 MiB).
MAX_BATCH_BYTES = 512 * 1024
POLL_TIMEOUT_MS = 200
SWITCH_INTERVAL_S = 0.001
GC_THRESHOLDS = (20_000, 50, 1_000)


@dataclass(frozen=True)
class Lane:
    name: str
    inboxes: tuple[str, ...]
    group: str
    max_records: int


def lanes(settings: Settings) -> tuple[Lane, Lane]:
    return (
        Lane("alarm", (ALARM_INBOX,), f"{settings.app_id}-router-alarm", ALARM_BATCH),
        Lane("main", MAIN_INBOXES, f"{settings.app_id}-router", settings.router_batch_size),
    )


class Writer:
    """Writes a batch of records as one record batch per topic partition and waits for the
    broker's acknowledgement of every one. A topic's partitions are looked up once: adding
    partitions to a topic (which moves keys) needs a restart of the router anyway."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}

    async def prepare(self, names: Iterable[str]) -> None:
        """Look up the partitions of `names` now, so that no write waits for it (the first alarm
        released to a partner would otherwise wait for a metadata round trip)."""
        for topic in set(names) - self._partitions.keys():
            self._partitions[topic] = sorted(await self.producer.partitions_for(topic))

    async def write(self, records: Sequence[OutRecord]) -> None:
        await self.prepare({r.topic for r in records})
        # The Java client's partitioner; an event's outputs share its key, so hash each key once.
        hashes: dict[bytes, int] = {}
        by_tp: dict[tuple[str, int], list[OutRecord]] = {}
        for r in records:
            partitions = self._partitions[r.topic]
            if r.key is None:
                partition = random.choice(partitions)
            else:
                h = hashes.get(r.key)
                if h is None:
                    h = hashes[r.key] = murmur2(r.key) & 0x7FFFFFFF
                partition = partitions[h % len(partitions)]
            by_tp.setdefault((r.topic, partition), []).append(r)
        futures = []
        appended = 0
        for (topic, partition), recs in by_tp.items():
            batch = self.producer.create_batch()
            for r in recs:
                appended += 1
                if appended % APPENDS_PER_YIELD == 0:
                    await asyncio.sleep(0)
                if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                    futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
                    if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                        raise ValueError(f"a record for {topic} does not fit in a record batch")
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        if futures:
            await asyncio.gather(*futures)


def _in_record(m: ConsumerRecord[bytes, bytes]) -> InRecord:
    return InRecord(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or ()))


async def run_lane(
    lane: Lane, router: Router, settings: Settings, bootstrap: str, stop: threading.Event
) -> None:
    client = lag.aiokafka_kwargs(lag.client_kwargs(settings))
    consumer = AIOKafkaConsumer(
        *lane.inboxes,
        bootstrap_servers=bootstrap,
        group_id=lane.group,
        client_id=f"{lane.group}-{lane.name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        max_poll_interval_ms=int(settings.max_poll_interval_s * 1000),
        **client,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"{lane.group}-{lane.name}",
        acks="all",
        linger_ms=2,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=4 * MAX_BATCH_BYTES,
        **client,
    )
    await producer.start()
    try:
        await consumer.start()
        try:
            writer = Writer(producer)
            await writer.prepare(OUTPUTS)
            while not stop.is_set():
                got = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=lane.max_records)
                if got:
                    await _handle(lane, router, writer, consumer, got)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def _handle(
    lane: Lane,
    router: Router,
    writer: Writer,
    consumer: AIOKafkaConsumer,
    got: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
) -> None:
    batch = [_in_record(m) for messages in got.values() for m in messages]
    outcomes = []
    for i in range(0, len(batch), CHUNK):
        outcomes += router.route_batch(batch[i : i + CHUNK])
        await asyncio.sleep(0)
    await writer.write([r for o in outcomes for r in o.records])
    metrics.observe_written(outcomes, lane.name, len(batch))
    offsets = {tp: messages[-1].offset + 1 for tp, messages in got.items()}
    try:
        await consumer.commit(offsets)
    except CommitFailedError:
        # The group moved the partitions on while this batch was written: their new owner
        # routes the batch again (the outputs are at-least-once; recipients dedupe on ce_id).
        log.warning("offsets not committed after a rebalance", extra={"lane": lane.name})


def run(settings: Settings, stop: threading.Event, policy: Policy | None = None) -> None:
    """Route until `stop` is set. The main lane runs in the calling thread, the alarm lane in a
    thread and event loop of its own; each lane has its own `Router`."""
    bootstrap = settings.bootstrap
    if bootstrap is None:
        raise ValueError("the router needs a bootstrap (KETENBUS_BOOTSTRAP)")
    policy = policy or policy_mod.load(settings.policy_file)
    alarm, main = lanes(settings)
    print(f"router: lanes {alarm.name} ({alarm.group}), {main.name} ({main.group})", flush=True)
    failed: list[BaseException] = []

    def run_alarm_lane() -> None:
        try:
            asyncio.run(run_lane(alarm, Router(policy), settings, bootstrap, stop))
        except BaseException as exc:
            failed.append(exc)
        finally:
            stop.set()  # either lane ending ends both: the process must not run half a router

    # An alarm's way through the lane waits for the GIL a few times, each time up to the switch
    # interval while the main lane routes: 1 ms instead of the default 5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # The garbage collector stops every thread while it runs. With its default thresholds it ran
    # a full collection over the lanes' objects every second or so under load, and an alarm
    # waited for it: p99 59 ms instead of 25 ms behind a 100,000-event backlog. Nearly everything
    # the router makes is freed by reference counting; collect cycles far less often, and never
    # scan what was loaded at start (policy, schemas, code) again.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    thread = threading.Thread(target=run_alarm_lane, name="router-alarm", daemon=True)
    thread.start()
    try:
        asyncio.run(run_lane(main, Router(policy), settings, bootstrap, stop))
    finally:
        stop.set()
        thread.join(30)
    if failed:
        raise failed[0]
