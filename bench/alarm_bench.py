"""Device alarms end to end while the router works off a backlog of other events.

A fresh embedded broker; `backlog` valid events of the other families (the router bench's mix
without alarms: Huisverbod, Zsm, Actieoverleg) are written to their inboxes first. Then
`ketenbus up --roles router` starts in a subprocess. Once a warm-up alarm came through (both
lanes have joined their groups) and the router is writing the backlog's outputs, an alarm
(`SlachtofferdeviceAlert.alarm` from the alarmcentrale, a new case each) is written every
`INTERVAL_S`, one at a time, until the backlog is done.

Latency of an alarm: from its ce_time (taken just before the producer is handed the record; the
partner's write and its acknowledgement are part of it) to the moment a consumer of
`keten.out.politie` in this process has it in hand. The ce_time header carries milliseconds, so
the send time is also kept at full precision here and used instead. An alarm counts as sent
during the backlog when, at its send, `keten.events` was reported short of the backlog by more
than `TAIL` records (the embedded broker reports end offsets short by up to a record batch); for
each such alarm the backlog still waiting then is recorded too.

The baseline is the same alarms on the same bus once the backlog is done: the idle latency.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import router_bench
from schemas import Envelope, default_codec
from schemas.registry import family
from streams import topics
from streams.broker import stop_process

NAME = "alarm_latency"
BACKLOG = 100_000
INTERVAL_S = 0.05
IDLE_ALARMS = 200
TAIL = 2_000
SEED = 20260303
BACKLOG_MIX = tuple(m for m in router_bench.MIX if m[0] != "SlachtofferdeviceAlert")
ALARM = family("SlachtofferdeviceAlert")
ALARM_TYPE = ALARM.ce_type("alarm")
TIMEOUT_S = 600.0


def _log(message: str) -> None:
    print(f"  [alarm bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Alarms:
    """Writes alarms and notes when each reaches the police outbox."""

    bootstrap: str
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    sent: dict[str, float] = field(default_factory=dict)  # ce_id -> time.time() at send
    got: dict[str, float] = field(default_factory=dict)  # ce_id -> time.time() in hand
    waiting: dict[str, int] = field(default_factory=dict)  # ce_id -> backlog left at send

    def __post_init__(self) -> None:
        from kafka import KafkaProducer

        self._codec = default_codec()
        self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader = threading.Thread(
            target=lambda: asyncio.run(self._read()), name="alarm-reader", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(30):
            raise RuntimeError("the keten.out.politie reader did not start")

    async def _read(self) -> None:
        """Read keten.out.politie from the start, as the police's consumer would. aiokafka parses
        record batches in C: kafka-python, in Python, took up to 250 ms for the police's share of
        one router batch, and the alarms behind it waited in this process, not in the bus."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topics.outbox("politie"),
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
        )
        await consumer.start()
        self._ready.set()
        alarm_type = ALARM_TYPE.encode()
        try:
            while not self._stop.is_set():
                got = await consumer.getmany(timeout_ms=50, max_records=10_000)
                now = time.time()
                for records in got.values():
                    for rec in records:
                        headers = dict(rec.headers or ())
                        if headers.get("ce_type") != alarm_type:
                            continue
                        with self._lock:
                            self.got.setdefault(headers["ce_id"].decode(), now)
        finally:
            await consumer.stop()

    def send(self, waiting: int = 0) -> str:
        zaak = f"ZAAK-2026-ALARM-{uuid.uuid4().hex[:12]}"
        at = dt.datetime.now(dt.UTC)
        datum = router_bench._datum(ALARM.name, "alarm", zaak, at, self.rng)
        env = Envelope.new("alarmcentrale", ALARM_TYPE, zaak, at)
        value = self._codec.encode(ALARM.name, datum)
        self.sent[env.id] = at.timestamp()
        self.waiting[env.id] = waiting
        self._producer.send(
            topics.inbox("alarmcentrale"), key=zaak.encode(), value=value, headers=env.to_headers()
        )
        return env.id

    def wait_for(self, ids: list[str], timeout: float) -> list[str]:
        """The ids of `ids` still missing after at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                missing = [i for i in ids if i not in self.got]
            if not missing:
                return []
            time.sleep(0.02)
        return missing

    def latencies_ms(self, ids: list[str]) -> list[float]:
        with self._lock:
            return sorted(1000 * (self.got[i] - self.sent[i]) for i in ids if i in self.got)

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5)
        self._producer.close(5)


def _events_count(offsets: Any, tps: list[Any]) -> int:
    return int(sum(offsets.end_offsets(tps).values()))


def _quantile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank quantile (p99 of 200 values is the 198th)."""
    if not sorted_ms:
        return float("nan")
    rank = max(1, min(len(sorted_ms), int(-(-q * len(sorted_ms) // 1))))
    return round(sorted_ms[rank - 1], 2)


def _summary(ms: list[float]) -> dict[str, Any]:
    return {
        "alarms": len(ms),
        "p50_ms": _quantile(ms, 0.50),
        "p99_ms": _quantile(ms, 0.99),
        "max_ms": round(ms[-1], 2) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


def run(
    backlog: int = BACKLOG, interval_s: float = INTERVAL_S, idle_alarms: int = IDLE_ALARMS
) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition

    from streams.broker import EmbeddedBroker

    _log(f"encoding {backlog:,} backlog events")
    inputs = router_bench.make_inputs(backlog, SEED, BACKLOG_MIX)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="ketenbus-alarm-bench-") as tmp:
        topics.provision(broker.bootstrap, router_bench.PARTITIONS)
        fill_s = router_bench.prefill(broker.bootstrap, inputs)
        _log(f"{backlog:,} events in the inboxes in {fill_s:.1f} s; starting the router")
        alarms = Alarms(broker.bootstrap)
        offsets = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        events = [
            TopicPartition(topics.EVENTS, p)
            for p in sorted(offsets.partitions_for_topic(topics.EVENTS) or ())
        ]
        log_path = Path(tmp) / "router.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "up", "--roles", "router", "--metrics-port", "0"],
                cwd=router_bench.REPO,
                env={
                    **os.environ,
                    "KETENBUS_BOOTSTRAP": broker.bootstrap,
                    "KETENBUS_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
                },
                stdout=out,
                stderr=out,
            )
        try:
            start = time.monotonic()
            warm = alarms.send()
            if alarms.wait_for([warm], 120):
                raise RuntimeError(
                    f"the warm-up alarm never arrived; router log:\n{router_bench._tail(log_path)}"
                )
            while _events_count(offsets, events) == 0:
                if time.monotonic() - start > 120:
                    raise RuntimeError("the router wrote nothing to keten.events")
                time.sleep(0.05)
            began = time.monotonic()
            first_left = backlog - _events_count(offsets, events)
            _log(f"router working (warm-up alarm after {began - start:.1f} s), {first_left:,} events left")
            during: list[str] = []
            while True:
                left = backlog - _events_count(offsets, events)
                if left <= TAIL:
                    break
                if time.monotonic() - began > TIMEOUT_S:
                    raise RuntimeError(f"backlog not done after {TIMEOUT_S:.0f} s, {left:,} left")
                during.append(alarms.send(left))
                time.sleep(interval_s)
            backlog_s = time.monotonic() - began
            _log(f"{len(during)} alarms during the backlog ({backlog_s:.1f} s); waiting for it to drain")
            last, quiet_since = -1, time.monotonic()
            while time.monotonic() - quiet_since < 2.0:  # drained: keten.events stopped growing
                count = _events_count(offsets, events)
                if count != last:
                    last, quiet_since = count, time.monotonic()
                time.sleep(0.1)
            idle = []
            for _ in range(idle_alarms):
                idle.append(alarms.send())
                time.sleep(interval_s)
            lost = alarms.wait_for(during + idle, 30)
            if lost:
                raise RuntimeError(f"{len(lost)} alarm(s) never reached keten.out.politie")
            if proc.poll() is not None:
                raise RuntimeError(f"the router ended; its log:\n{router_bench._tail(log_path)}")
            busy = _summary(alarms.latencies_ms(during))
            quiet = _summary(alarms.latencies_ms(idle))
            waiting = [alarms.waiting[i] for i in during]
        finally:
            stop_process(proc, 20)
            alarms.close()
            offsets.close()
    _log(f"during the backlog: p50 {busy['p50_ms']} ms, p99 {busy['p99_ms']} ms, max {busy['max_ms']} ms")
    return {
        "name": NAME,
        "parameters": {
            "backlog_events": backlog,
            "backlog_mix": [f"{f}.{s} from {p}" for f, s, p in BACKLOG_MIX],
            "alarm_interval_s": interval_s,
            "idle_alarms": idle_alarms,
            "measured": "ce_time (send) to in hand at a keten.out.politie consumer, same machine clock",
            "counted_while_backlog_left_over": TAIL,
            "partitions": router_bench.PARTITIONS,
            "router": "ketenbus up --roles router (alarm lane: own consumer group and producer)",
        },
        "figures": {
            **busy,
            "backlog_seconds": round(backlog_s, 1),
            "backlog_left_at_first_alarm": waiting[0] if waiting else None,
            "backlog_left_at_last_alarm": waiting[-1] if waiting else None,
        },
        "baseline": {"implementation": "the same bus once the backlog is done (idle)", **quiet},
    }
