"""The one clock of the bus, and the tick records that drive it in replay.

Live, `now` is the wall clock and the timer worker sweeps every second. In replay the scenario
driver advances a virtual clock: once the events it published are on `keten.events`, it writes
a tick record into every partition of `keten.events` (and a copy on `keten.klok`, the log of
the clock). A tick sits behind every event of its partition that came before it, so a timer
worker fires a deadline only after it has seen every event that could have satisfied it: the
same escalations, in the same order, on every run. When it has published them, the worker
writes a `verwerkt` record on `keten.klok` for that partition, so the driver knows the tick is
done everywhere before it asserts anything.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from schemas.envelope import Headers

TICK_TYPE = "nl.ketenbus.klok.tick"
DONE_TYPE = "nl.ketenbus.klok.verwerkt"  # a timer worker finished a tick on one partition
TICK_KEY = b"__klok__"


def wall_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class VirtualClock:
    """Time as the last tick said; it never goes back."""

    now_ms: int = 0

    def advance(self, now_ms: int) -> int:
        self.now_ms = max(self.now_ms, now_ms)
        return self.now_ms

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now_ms / 1000, dt.UTC)


def tick_value(now: dt.datetime) -> bytes:
    return json.dumps({"now_ms": int(now.timestamp() * 1000), "now": now.isoformat()}).encode()


def tick_headers() -> Headers:
    return [("ce_type", TICK_TYPE.encode()), ("content-type", b"application/json")]


def done_value(partition: int, now_ms: int, fired: int) -> bytes:
    return json.dumps({"partition": partition, "now_ms": now_ms, "fired": fired}).encode()


def done_headers() -> Headers:
    return [("ce_type", DONE_TYPE.encode()), ("content-type", b"application/json")]


def parse_tick(value: bytes) -> int:
    """The virtual time (ms) a tick record sets; ValueError for anything else."""
    data = json.loads(value)
    now_ms = data["now_ms"]
    if not isinstance(now_ms, int):
        raise ValueError("now_ms must be an integer")
    return now_ms
