"""The router's worker on the real broker: how it writes, and that each lane is its own group."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.partitioner.default import murmur2

from streams import lag, router_worker, topics
from streams.broker import EmbeddedBroker
from streams.router import OutRecord
from streams.settings import Settings
from tests.bus import Publisher, RouterProcess, Tap, case_ref
from tests.samples import sample

pytestmark = pytest.mark.integration


def test_writer_puts_each_record_where_the_java_partitioner_would_in_order(broker: EmbeddedBroker) -> None:
    topic = f"t.writer.{uuid.uuid4().hex[:8]}"  # a topic of its own: the values are not Avro
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        admin.close()
    keys = [case_ref("W").encode() for _ in range(12)]
    records = [
        OutRecord(topic, key, f"{n}".encode(), [("ce_id", f"w-{n}".encode())])
        for n in range(3)
        for key in keys
    ]

    async def write() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await router_worker.Writer(producer).write(records)
        finally:
            await producer.stop()

    asyncio.run(write())  # returns once the broker acknowledged every record
    reader = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        seen: dict[bytes, list[tuple[int, bytes]]] = {}
        deadline = time.monotonic() + 30
        while sum(map(len, seen.values())) < len(records) and time.monotonic() < deadline:
            for batch in reader.poll(timeout_ms=200).values():
                for m in batch:
                    seen.setdefault(m.key, []).append((m.partition, m.value))
    finally:
        reader.close()
    for key in keys:
        # the Java client's partitioner (kafka-python's too): murmur2 of the key
        expected = (murmur2(key) & 0x7FFFFFFF) % 3
        assert seen[key] == [(expected, b"0"), (expected, b"1"), (expected, b"2")]  # in the order written
    assert len({p for key in keys for p, _ in seen[key]}) > 1


def test_each_lane_commits_in_its_own_group_only_what_it_routed(tmp_path: Path) -> None:
    """On a broker of its own: a second router on the shared one would route every earlier
    test's events again."""
    app_id = "t-lanes"
    with EmbeddedBroker() as own:
        topics.provision(own.bootstrap, 3)
        tap, publisher = Tap(own.bootstrap), Publisher(own.bootstrap)
        proc = RouterProcess(
            own.bootstrap, log_path=tmp_path / "router.log", roles="router", env={"KETENBUS_APP_ID": app_id}
        ).start()
        clients = lag._Clients(own.bootstrap)
        try:
            alarm, melding = case_ref("AL"), case_ref("ME")
            datum = sample("SlachtofferdeviceAlert", "alarm", alarm)
            publisher.event("alarmcentrale", "SlachtofferdeviceAlert", datum)
            publisher.event("veilig-thuis", "Melding", sample("Melding", "ontvangen", melding))
            tap.wait_for(alarm, topics.outbox("politie"), timeout=60)
            tap.wait_for(melding, topics.EVENTS, timeout=60)
            groups = lag.consumer_groups(app_id, ["router"])
            assert groups == [f"{app_id}-router", f"{app_id}-router-alarm"]
            committed: dict[str, dict[Any, Any]] = {}
            for _ in range(100):  # the commit follows the broker's acknowledgement of the outputs
                committed = {g: clients.committed(g) for g in groups}
                if all(committed.values()):
                    break
                time.sleep(0.1)
        finally:
            clients.close()
            proc.stop()
            tap.close()
            publisher.close()
    main_topics = {tp.topic for tp in committed[f"{app_id}-router"]}
    alarm_topics = {tp.topic for tp in committed[f"{app_id}-router-alarm"]}
    assert alarm_topics == {topics.inbox("alarmcentrale")}
    assert topics.inbox("veilig-thuis") in main_topics
    assert topics.inbox("alarmcentrale") not in main_topics


def test_lanes_split_the_inboxes_between_them() -> None:
    alarm, main = router_worker.lanes(Settings())
    assert alarm.inboxes == (topics.inbox("alarmcentrale"),)
    assert set(main.inboxes) == set(topics.INBOXES) - set(alarm.inboxes)
    assert {alarm.group, main.group} == set(lag.consumer_groups(Settings().app_id, ["router"]))
    assert alarm.max_records < main.max_records
