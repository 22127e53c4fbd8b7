"""Test helpers around a real broker: publish partner events, and a tap that reads every output
topic in the background so tests wait for what they expect instead of sleeping."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas import Envelope, default_codec
from schemas.envelope import fields_of, header
from streams import topics
from streams.broker import stop_process

REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def case_ref(prefix: str = "Z") -> str:
    """A case reference no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}-{next(_counter)}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=(dt.datetime.now().microsecond // 1000) * 1000)


@dataclass
class Seen:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def decode(self, resolve: bool = False) -> dict[str, Any]:
        _, record = default_codec().decode(self.value, resolve=resolve, fields_hint=fields_of(self.headers))
        return record


@dataclass
class Tap:
    """Reads the output topics from the beginning, in a thread, indexed by record key."""

    bootstrap: str
    watched: Sequence[str] = field(
        default_factory=lambda: (*topics.OUTBOXES, topics.EVENTS, topics.VERSTREKKINGEN, topics.DLQ)
    )

    def __post_init__(self) -> None:
        self._by_key: dict[bytes | None, list[Seen]] = defaultdict(list)
        self._read_up_to: dict[tuple[str, int], int] = {}
        self._offsets = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        self._all: list[Seen] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tap")
        self._thread.start()

    def _run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None, fetch_max_wait_ms=10
        )
        parts = [TopicPartition(t, p) for t in self.watched for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        while not self._stop.is_set():
            batch = consumer.poll(timeout_ms=100, max_records=5000)
            if not batch:
                continue
            with self._lock:
                for records in batch.values():
                    for m in records:
                        seen = Seen(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or ()))
                        self._by_key[m.key].append(seen)
                        self._all.append(seen)
                        self._read_up_to[(m.topic, m.partition)] = m.offset + 1
                self._lock.notify_all()
        consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._offsets.close()

    def sync(self, timeout: float = 30.0) -> None:
        """Wait until everything written to the watched topics so far has been read."""
        parts = [
            TopicPartition(t, p) for t in self.watched for p in self._offsets.partitions_for_topic(t) or ()
        ]
        ends = {(tp.topic, tp.partition): end for tp, end in self._offsets.end_offsets(parts).items() if end}
        self.wait(
            lambda t: all(t._read_up_to.get(tp, 0) >= end for tp, end in ends.items()),
            timeout,
            "the tap to catch up",
        )

    def records(self, key: str | bytes | None = None, topic: str | None = None) -> list[Seen]:
        with self._lock:
            found = self._all if key is None else self._by_key.get(_b(key), [])
            return [s for s in found if topic is None or s.topic == topic]

    def wait(
        self,
        predicate: Callable[[Tap], bool],
        timeout: float = 30.0,
        message: str = "condition",
    ) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
                self._lock.wait(min(remaining, 0.2))

    def wait_for(self, key: str, topic: str, count: int = 1, timeout: float = 30.0) -> list[Seen]:
        self.wait(lambda t: len(t.records(key, topic)) >= count, timeout, f"{count} record(s) on {topic}")
        return self.records(key, topic)


def _b(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


class Publisher:
    """Writes partner events to their inboxes, as a partner connector would."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)

    def close(self) -> None:
        self.producer.close()

    def event(
        self,
        partner: str,
        family: str,
        datum: dict[str, Any],
        *,
        source_partner: str | None = None,
        ce_type: str | None = None,
        ce_id: str | None = None,
        inbox: str | None = None,
        wait: bool = True,
    ) -> str:
        datum = {"tijdstip": now(), **datum}
        env = Envelope.new(
            source_partner or partner,
            ce_type or f"nl.ketenbus.{family.lower()}.{datum['stap']}",
            datum["zaak_ref"],
            datum["tijdstip"],
        )
        if ce_id:
            env = Envelope(ce_id, env.source, env.type, env.time, env.subject)
        value = default_codec().encode(family, datum)
        self.raw(
            inbox or topics.inbox(partner), datum["zaak_ref"].encode(), value, env.to_headers(), wait=wait
        )
        return env.id

    def raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] = (),
        wait: bool = True,
    ) -> None:
        future = self.producer.send(topic, key=key, value=value, headers=list(headers))
        if wait:
            future.get(timeout=10)

    def flush(self) -> None:
        self.producer.flush(10)


class RouterProcess:
    """`ketenbus up` against a given broker, in a subprocess, as an operator would run it."""

    def __init__(
        self,
        bootstrap: str,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        roles: str = "router,timers",
    ) -> None:
        self.bootstrap = bootstrap
        self.roles = roles
        self.env = {**os.environ, "KETENBUS_BOOTSTRAP": bootstrap, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RouterProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "up", "--metrics-port", "0", "--roles", self.roles],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=out,
        )
        return self

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        stop_process(self.proc, timeout)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class IsolatedBus:
    """A broker of its own with a router and a virtual-clock timer worker in separate
    processes: for tests that move the clock or kill a worker."""

    broker: Any
    tap: Tap
    publisher: Publisher
    clock: Any
    router: RouterProcess
    timers: RouterProcess

    def restart_timers(self, kill: bool = True) -> None:
        if kill:
            self.timers.kill()
        else:
            self.timers.stop()
        self.timers.start()


@contextlib.contextmanager
def isolated_bus(log_path: Path, app_id: str) -> Iterator[IsolatedBus]:
    from connectors.virtual_time import VirtualTime
    from streams.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        topics.provision(broker.bootstrap, 3)
        tap = Tap(
            broker.bootstrap,
            watched=(*topics.OUTBOXES, topics.EVENTS, topics.inbox("ketenbus"), topics.DLQ, topics.RADAR),
        )
        publisher = Publisher(broker.bootstrap)
        env = {"KETENBUS_APP_ID": app_id}
        router = RouterProcess(broker.bootstrap, env, log_path, roles="router")
        timers = RouterProcess(
            broker.bootstrap, {**env, "KETENBUS_CLOCK": "virtual"}, log_path, roles="timers"
        )
        clock = VirtualTime(broker.bootstrap)
        try:
            router.start()
            timers.start()
            # Ready when a tick comes back done from every partition.
            clock.tick(dt.datetime(2020, 1, 1, tzinfo=dt.UTC), timeout=90)
            yield IsolatedBus(broker, tap, publisher, clock, router, timers)
        finally:
            for proc in (router, timers):
                proc.stop()
            clock.close()
            publisher.close()
            tap.close()


def require_tool(name: str) -> str:
    """The path of a Debian tool `make tools` installs: skipped where it is missing, a failure
    in CI, where it must be there."""
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: `make tools` should have installed it")
        pytest.skip(f"{name} is not installed: `make tools` installs it (Debian package prometheus)")
    return path
