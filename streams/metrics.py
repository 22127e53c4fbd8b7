"""Prometheus metrics of the bus (DESIGN.md §11). Labels never carry personal data: only
families, types, partners, outcomes and reason codes."""

from __future__ import annotations

import collections
import datetime as dt
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from streams.router import Outcome

EVENTS_IN = Counter(
    "ketenbus_events_in_total", "Valid events accepted from partner inboxes.", ["family", "type", "partner"]
)
EVENTS_OUT = Counter(
    "ketenbus_events_out_total", "Records written to partner outboxes.", ["family", "type", "recipient"]
)
DECISIONS = Counter(
    "ketenbus_policy_decisions_total",
    "Policy decisions per candidate recipient: released, denied (no rule) or narrowed (houd het klein).",
    ["outcome", "recipient"],
)
DLQ = Counter("ketenbus_dlq_total", "Records dead-lettered, by reason code.", ["reason"])
LATENCY = Histogram(
    "ketenbus_e2e_latency_seconds",
    "From ce_time to the write of the outbox record, per family.",
    ["family"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH = Histogram(
    "ketenbus_router_batch_records",
    "Records per router batch.",
    ["lane"],
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 2000, 5000),
)
LAST_BATCH = Gauge(
    "ketenbus_router_last_batch_timestamp_seconds",
    "Wall time of the router's last completed batch.",
    ["lane"],
)
TIMERS_PENDING = Gauge("ketenbus_timers_pending", "Deadlines waiting, per timer.", ["timer"])
ESCALATIONS = Counter(
    "ketenbus_escalations_total",
    "Escalations published: reminders, expired deadlines, red flags, patterns.",
    ["timer", "stap"],
)
FIRING_LAG = Histogram(
    "ketenbus_timer_firing_lag_seconds",
    "Time from a deadline passing to its escalation being published (clock time of the bus).",
    ["timer"],
    buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
CONSUMER_LAG = Gauge(
    "ketenbus_consumer_lag_records",
    "Records behind the end of the partition.",
    ["group", "topic", "partition"],
)


@functools.cache
def _child(metric: Any, labels: tuple[str, ...]) -> Any:
    """`metric.labels(*labels)`, looked up once: the lookup costs more than the increment."""
    return metric.labels(*labels)


def observe_outcomes(outcomes: Iterable[Outcome]) -> None:
    counts: collections.Counter[tuple[Counter, tuple[str, ...]]] = collections.Counter()
    for o in outcomes:
        if o.dead_letter is not None:
            counts[DLQ, (o.dead_letter,)] += 1
            continue
        fam, ce_type = o.family or "", o.ce_type or ""
        counts[EVENTS_IN, (fam, ce_type, o.partner or "")] += 1
        for d in o.decisions.values():
            counts[DECISIONS, (d.outcome, d.recipient)] += 1
            if d.allowed:
                counts[EVENTS_OUT, (fam, ce_type, d.recipient)] += 1
    for (metric, labels), n in counts.items():
        _child(metric, labels).inc(n)


def observe_written(outcomes: Iterable[Outcome], lane: str, count: int) -> None:
    """After the broker acknowledged a batch: latency from ce_time to now."""
    now = dt.datetime.now(dt.UTC)
    for o in outcomes:
        if o.ce_time is not None and o.family is not None:
            _child(LATENCY, (o.family,)).observe(max(0.0, (now - o.ce_time).total_seconds()))
    BATCH.labels(lane).observe(count)
    LAST_BATCH.labels(lane).set(now.timestamp())


def serve(port: int, addr: str = "127.0.0.1") -> int:
    """Serve /metrics on `port` (0: a free one); returns the port."""
    server, _thread = start_http_server(port, addr=addr)
    return int(server.server_address[1])
