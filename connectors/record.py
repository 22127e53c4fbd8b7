"""`ketenbus record` and the replay of a recording.

A recording (JSON lines) holds, from a running bus: every inbox record (`keten.in.*`, with
key, headers and value in base64, its ce_time and its broker timestamp), every clock tick
(`keten.klok`), and as the expected outcome every outbox record (`keten.out.*`), the
escalations (`keten.in.ketenbus`) and the dead letters (`keten.dlq`). By default it reads these
topics from their beginning, so it can be started after the run it records; it stops on SIGINT,
after `--seconds`, or (`seconds=0`) once it has read up to the current end.

Replaying publishes the partner inbox records on a fresh bus in their original order and at
their virtual time: each recorded tick is replayed after the inbox records that were written
before it (broker timestamps give the order) and the clock ticks exactly where it ticked. Then
it compares deliveries (partner, ce_id, released fields), escalations (escalatie_id) and
dead-letter reasons with the recording.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from connectors.harness import Bus, Reader, Sent, running_bus
from schemas import default_codec
from schemas.envelope import fields_of, header, parse_time
from streams import topics
from streams.clock import TICK_TYPE

BUS_INBOX = topics.inbox("ketenbus")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(data: str | None) -> bytes | None:
    return None if data is None else base64.b64decode(data)


def line_of(m: Any) -> dict[str, Any]:
    return {
        "topic": m.topic,
        "partition": m.partition,
        "offset": m.offset,
        "timestamp": m.timestamp,
        "key": _b64(m.key),
        "value": _b64(m.value),
        "headers": [[k, _b64(v)] for k, v in m.headers or ()],
        "ce_time": header(m.headers, "ce_time"),
    }


def record(bootstrap: str, out: TextIO, seconds: float | None = None) -> int:
    """Write the recording to `out`; returns the number of records. Stops on KeyboardInterrupt,
    after `seconds`, or (seconds=0) at the current end of the topics."""
    names = [*topics.INBOXES, *topics.OUTBOXES, topics.KLOK, topics.DLQ]
    reader = Reader(bootstrap, names)
    n = 0
    stop = None if seconds is None else time.monotonic() + seconds
    try:
        while True:
            for m in reader.drain():
                if m.topic == topics.KLOK and header(m.headers, "ce_type") != TICK_TYPE:
                    continue
                out.write(json.dumps(line_of(m)) + "\n")
                n += 1
            out.flush()
            if stop is not None and time.monotonic() >= stop:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return n


@dataclass
class Comparison:
    deliveries_expected: int = 0
    deliveries_observed: int = 0
    escalations_expected: int = 0
    escalations_observed: int = 0
    dead_expected: int = 0
    dead_observed: int = 0
    differences: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def identical(self) -> bool:
        return not self.differences

    def render(self) -> str:
        head = (
            f"recording replayed: deliveries {self.deliveries_observed}/{self.deliveries_expected}, "
            f"escalations {self.escalations_observed}/{self.escalations_expected}, "
            f"dead letters {self.dead_observed}/{self.dead_expected}; wall {self.wall:.1f} s"
        )
        if self.identical:
            return head + "\n  PASS identical deliveries, escalations and dead letters"
        return head + "\n" + "\n".join(f"  FAIL {d}" for d in self.differences[:50])


def load_recording(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _delivery_key(topic: str, headers: list[tuple[str, bytes]]) -> tuple[str, str, str]:
    fields = ",".join(sorted(fields_of(headers) or ()))
    return (topic.removeprefix("keten.out."), header(headers, "ce_id") or "", fields)


def _headers(line: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(k, _unb64(v) or b"") for k, v in line["headers"]]


def _escalatie_id(value: bytes | None) -> str:
    _, record_ = default_codec().decode(value or b"")
    return str(record_["escalatie_id"])


def replay_recording(path: str | Path) -> Comparison:
    """Replay a recording on a fresh bus and compare the outcome with the recorded one."""
    began = time.monotonic()
    lines = load_recording(path)
    inputs = [x for x in lines if x["topic"].startswith("keten.in.") and x["topic"] != BUS_INBOX]
    ticks = [x for x in lines if x["topic"] == topics.KLOK]
    expected_deliveries = Counter(
        _delivery_key(x["topic"], _headers(x)) for x in lines if x["topic"].startswith("keten.out.")
    )
    expected_escalations = Counter(
        _escalatie_id(_unb64(x["value"])) for x in lines if x["topic"] == BUS_INBOX
    )
    expected_dead = Counter(
        header(_headers(x), "ketenbus_reden") or "?" for x in lines if x["topic"] == topics.DLQ
    )
    plan = list(_plan(inputs, ticks))
    first = min((t for kind, t, _ in plan if kind == "tick"), default=None) or min(
        (_ce_time(x) for x in inputs), default=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    with running_bus(None, ready_at=first - dt.timedelta(days=2)) as bus:
        pending: list[Sent] = []
        for kind, t, item in plan:
            if kind == "input":
                assert item is not None
                pending.append(
                    bus.send(item["topic"], _unb64(item["key"]), _unb64(item["value"]), _headers(item))
                )
                continue
            bus.settle(pending)
            pending = []
            bus.tick(t)
        bus.settle(pending)
        from connectors.replay import quiesce

        quiesce(bus, quiet=0.2)
        observed_deliveries = Counter(_delivery_key(m.topic, list(m.headers)) for m in bus.delivered)
        observed_escalations = Counter(
            _escalatie_id(m.value)
            for m in bus.events
            if (header(m.headers, "ce_type") or "").startswith("nl.ketenbus.escalatie.")
        )
        observed_dead = Counter(header(m.headers, "ketenbus_reden") or "?" for m in bus.dead)
    c = Comparison(
        sum(expected_deliveries.values()),
        sum(observed_deliveries.values()),
        sum(expected_escalations.values()),
        sum(observed_escalations.values()),
        sum(expected_dead.values()),
        sum(observed_dead.values()),
    )
    pairs: list[tuple[str, Counter[Any], Counter[Any]]] = [
        ("delivery", expected_deliveries, observed_deliveries),
        ("escalation", expected_escalations, observed_escalations),
        ("dead letter", expected_dead, observed_dead),
    ]
    for what, exp, obs in pairs:
        for k in sorted(set(exp) | set(obs), key=str):
            if exp[k] != obs[k]:
                c.differences.append(f"{what} {k}: recorded {exp[k]}, replayed {obs[k]}")
    c.wall = time.monotonic() - began
    return c


def _ce_time(x: dict[str, Any]) -> dt.datetime:
    try:
        return parse_time(x["ce_time"]) if x.get("ce_time") else dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _tick_time(x: dict[str, Any]) -> dt.datetime:
    now_ms = json.loads(_unb64(x["value"]) or b"{}")["now_ms"]
    return dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)


def _plan(
    inputs: list[dict[str, Any]], ticks: list[dict[str, Any]]
) -> Iterator[tuple[str, dt.datetime, dict[str, Any] | None]]:
    """Inputs and ticks in their original order. With recorded ticks, each tick follows the
    inputs written before it (broker timestamps); without, the clock ticks to every ce_time."""
    if ticks:
        events = [(x["timestamp"], 0, x["topic"], x["offset"], "input", x) for x in inputs]
        events += [(x["timestamp"], 1, x["topic"], x["offset"], "tick", x) for x in ticks]
        for _ts, _o, _tp, _off, kind, x in sorted(events, key=lambda e: e[:4]):
            if kind == "input":
                yield ("input", _ce_time(x), x)
            else:
                yield ("tick", _tick_time(x), None)
        return
    ordered = sorted(inputs, key=lambda x: (_ce_time(x), x["timestamp"], x["topic"], x["offset"]))
    for x in ordered:
        yield ("input", _ce_time(x), x)
        yield ("tick", _ce_time(x), None)


__all__ = ["Bus", "Comparison", "record", "replay_recording"]
