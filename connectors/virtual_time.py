"""Drive the bus's virtual clock from outside, as a scenario replay does.

`VirtualTime.tick(now)` writes a tick into every partition of `keten.events` (and its log on
`keten.klok`), then waits until a timer worker reported the tick done on every partition. By
then every escalation due at `now` has been published to `keten.in.ketenbus`.
Call it only after the events that happened before `now` are on `keten.events`.

A tick that no worker reports done within `resend_after_s` is written again to the partitions
still waiting. Ticks are idempotent (the clock only moves forward and a due deadline fires
once), and a tick can be lost to the worker: faust-streaming drops, and acknowledges, records
it fetched while its group was still settling after a restart, when the group had not yet
committed an offset for them.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from schemas.envelope import header
from streams import topics
from streams.clock import DONE_TYPE, TICK_KEY, tick_headers, tick_value


class TickTimeout(TimeoutError):
    pass


class VirtualTime:
    def __init__(self, bootstrap: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, fetch_max_wait_ms=10
        )
        self.partitions = sorted(self.consumer.partitions_for_topic(topics.EVENTS) or ())
        if not self.partitions:
            raise RuntimeError(f"{topics.EVENTS} does not exist: provision the topics first")
        klok = TopicPartition(topics.KLOK, 0)
        self.consumer.assign([klok])
        self.consumer.seek_to_end(klok)
        self.consumer.position(klok)  # resolve the lazy seek now: only acks after this count
        self.done: dict[int, int] = {}  # partition -> latest now_ms reported done
        self.fired = 0
        self.resent = 0  # ticks written again because no worker reported them done in time

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()

    def tick(self, now: dt.datetime, timeout: float = 60.0, resend_after_s: float = 5.0) -> int:
        """Advance the virtual clock to `now`; returns how many escalations the tick fired."""
        value = tick_value(now)
        target = int(now.timestamp() * 1000)
        self.producer.send(topics.KLOK, key=TICK_KEY, value=value, headers=tick_headers())
        self._send_tick(value, self.partitions)
        fired_before = self.fired
        started = time.monotonic()
        resend_at = started + resend_after_s
        while waiting := [p for p in self.partitions if self.done.get(p, -1) < target]:
            clock = time.monotonic()
            if clock > started + timeout:
                raise TickTimeout(f"no timer worker finished the tick on partitions {waiting}")
            if clock > resend_at:
                self._send_tick(value, waiting)
                self.resent += len(waiting)
                resend_at = clock + resend_after_s
            for records in self.consumer.poll(timeout_ms=100).values():
                for m in records:
                    if header(m.headers, "ce_type") != DONE_TYPE:
                        continue
                    done = json.loads(m.value)
                    if done["now_ms"] >= target:
                        self.fired += done["fired"]
                    p = done["partition"]
                    self.done[p] = max(self.done.get(p, -1), done["now_ms"])
        return self.fired - fired_before

    def _send_tick(self, value: bytes, partitions: list[int]) -> None:
        for p in partitions:
            self.producer.send(topics.EVENTS, key=TICK_KEY, value=value, headers=tick_headers(), partition=p)
        self.producer.flush()
