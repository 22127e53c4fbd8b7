"""`ketenbus demo`: the whole chain on one machine, at accelerated virtual time.

An embedded broker, the router and the timer worker (in their own processes, as in
production), the seven simulated partners and a generator of synthetic cases. The demo drives
the virtual clock step by step: publish what the partners do by now, wait until the router has
taken it, tick the clock (deadlines fire), hand every partner what arrived in its own outbox,
and schedule their reactions. At the end it checks every delivery against the policy and prints
what happened. A disclosure outside the policy is a failure (exit 1), not a footnote.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from connectors.generator import generate
from connectors.harness import Reader, workers
from connectors.partners import Action, Delivered, PartnerAgent, agents
from connectors.virtual_time import VirtualTime
from schemas import Envelope, default_codec
from schemas.envelope import fields_of, header, source_for
from schemas.registry import PARTNERS
from streams import policy as policy_mod
from streams import topics
from streams.broker import bootstrap_or_embedded
from streams.clock import TICK_TYPE
from streams.deadlines import load_termijnen
from streams.settings import Settings

START = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 08:00 in Amsterdam
SPAN = dt.timedelta(days=14)  # new cases arrive over two weeks
FINE = dt.timedelta(hours=6)  # the clock never jumps further while cases are active...
ACTIVE = dt.timedelta(days=45)  # ...during the first weeks
HORIZON = dt.timedelta(days=400)  # then it runs on to fire what is still pending (monitoring: 12 months)
BAD_EVERY = 15  # one malformed or hostile input per this many cases


@dataclass
class Summary:
    cases: int = 0
    published: int = 0
    families: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    fields_released: Counter[str] = field(default_factory=Counter)
    denied: Counter[str] = field(default_factory=Counter)
    narrowed: Counter[str] = field(default_factory=Counter)
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    dlq: Counter[str] = field(default_factory=Counter)
    verstrekkingen: int = 0
    breaches: list[str] = field(default_factory=list)
    # what the agents themselves counted, to hold against what the topics say
    consumed: Counter[str] = field(default_factory=Counter)
    produced: Counter[str] = field(default_factory=Counter)
    routed_from: Counter[str] = field(default_factory=Counter)
    timers: list[str] = field(default_factory=list)  # every timer and pattern the bus watched

    @property
    def quiet_timers(self) -> list[str]:
        fired = {t for t, _ in self.escalations}
        return [t for t in self.timers if t not in fired]

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "published": self.published,
            "families": dict(sorted(self.families.items())),
            "received": dict(sorted(self.received.items())),
            "fields_released": dict(sorted(self.fields_released.items())),
            "denied": dict(sorted(self.denied.items())),
            "narrowed": dict(sorted(self.narrowed.items())),
            "escalations": {f"{t}/{s}": n for (t, s), n in sorted(self.escalations.items())},
            "dlq": dict(sorted(self.dlq.items())),
            "verstrekkingen": self.verstrekkingen,
            "breaches": len(self.breaches),
            "consumed": dict(sorted(self.consumed.items())),
            "produced": dict(sorted(self.produced.items())),
        }

    def render(self) -> str:
        out = [
            f"\nketenbus demo: {self.cases} synthetic cases, {self.published} events published by partners\n"
        ]
        out.append(_table(["family", "events routed"], sorted(self.families.items())))
        rows = [
            (p, self.received[p], self.fields_released[p], self.denied[p], self.narrowed[p]) for p in PARTNERS
        ]
        out.append(
            _table(["partner", "received", "fields released", "denied (no rule)", "held back (EGG)"], rows)
        )
        esc_rows = [(t, s, n) for (t, s), n in sorted(self.escalations.items())]
        esc_rows += [(t, "(none: met every time)", 0) for t in self.quiet_timers]
        out.append(_table(["timer / pattern", "escalation", "count"], esc_rows or [("-", "-", 0)]))
        out.append(_table(["dead-letter reason", "count"], sorted(self.dlq.items()) or [("-", 0)]))
        total = sum(self.received.values())
        verdict = (
            f"policy check: {total} deliveries, each allowed by a rule with exactly its released fields, "
            f"{self.verstrekkingen} Verstrekking records (one per delivery): OK"
            if not self.breaches
            else f"policy check: {len(self.breaches)} BREACH(ES):\n  " + "\n  ".join(self.breaches[:20])
        )
        out.append(verdict)
        return "\n".join(out)


def _table(headers: list[str], rows: Iterable[tuple[Any, ...]]) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = [
        "  ".join(c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(r, widths, strict=True))
        for r in rows
    ]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body, ""])


# -- the moving parts ---------------------------------------------------------------------------


class Chain:
    """The simulation loop around the real bus."""

    def __init__(self, bootstrap: str, seed: int, summary: Summary, quiet: bool) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        self.clock = VirtualTime(bootstrap)
        self.agents: dict[str, PartnerAgent] = agents(seed)
        # each partner reads only its own outbox
        self.outboxes = {p: Reader(bootstrap, [topics.outbox(p)]) for p in PARTNERS}
        self.ledger = Reader(bootstrap, [topics.EVENTS, topics.DLQ])
        self.routed: set[str] = set()
        self.dead = 0
        self.escalations_routed = 0
        self.escalations_fired = 0
        self.queue: list[tuple[dt.datetime, str, Action]] = []
        self.summary = summary
        self.quiet = quiet
        self.deliveries = 0

    def schedule(self, actions: Iterable[Action]) -> None:
        for a in actions:
            heapq.heappush(self.queue, (a.at, a.ce_id, a))

    def publish(self, action: Action) -> None:
        env = Envelope(
            action.ce_id, source_for(action.partner), action.ce_type, action.at, action.datum["zaak_ref"]
        )
        value = default_codec().encode(action.family, action.datum)
        self.producer.send(
            topics.inbox(action.partner), key=env.subject.encode(), value=value, headers=env.to_headers()
        )
        self.summary.published += 1
        self.summary.produced[action.partner] += 1

    def publish_bad(self, kind: int, zaak: str, at: dt.datetime) -> None:
        """Hostile or broken input, as real partners produce it: the bus must dead-letter it."""
        datum = {"stap": "ontvangen", "zaak_ref": zaak, "tijdstip": at}
        env = Envelope.new("veilig-thuis", "nl.ketenbus.melding.ontvangen", zaak, at)
        value = default_codec().encode("Melding", datum)
        if kind == 0:  # bytes that are no Avro at all
            self.producer.send(
                topics.inbox("veilig-thuis"), key=zaak.encode(), value=b"{}", headers=env.to_headers()
            )
        elif kind == 1:  # politie writes a melding in the name of veilig-thuis
            self.producer.send(
                topics.inbox("politie"), key=zaak.encode(), value=value, headers=env.to_headers()
            )
        else:  # a huisverbod "extended" to 35 days
            hv = {
                "stap": "verlengd",
                "zaak_ref": zaak,
                "tijdstip": at,
                "ingangsdatum": at,
                "einddatum": at + dt.timedelta(days=35),
                "pleger_meerderjarig": True,
            }
            env = Envelope.new("gemeente", "nl.ketenbus.huisverbod.verlengd", zaak, at)
            self.producer.send(
                topics.inbox("gemeente"),
                key=zaak.encode(),
                value=default_codec().encode("Huisverbod", hv),
                headers=env.to_headers(),
            )
        self.expected_dead += 1

    expected_dead = 0

    def settle(self, expect_ids: set[str], timeout: float = 60) -> None:
        """Wait until the router took every published event (routed or dead-lettered) and every
        escalation the clock fired."""
        self.producer.flush()
        deadline = time.monotonic() + timeout
        while True:
            for m in self.ledger.drain():
                if m.topic == topics.DLQ:
                    self.dead += 1
                    continue
                ce_id = header(m.headers, "ce_id")
                if ce_id:
                    self.routed.add(ce_id)
                if (header(m.headers, "ce_type") or "").startswith("nl.ketenbus.escalatie."):
                    self.escalations_routed += 1
            if (
                expect_ids <= self.routed
                and self.dead >= self.expected_dead
                and self.escalations_routed >= self.escalations_fired
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the router did not take every published event in time")
            time.sleep(0.02)

    def deliver(self, now: dt.datetime) -> None:
        for partner, reader in self.outboxes.items():
            for m in reader.drain():
                delivered = Delivered.decode(m.value, m.headers)
                self.deliveries += 1
                self.summary.consumed[partner] += 1
                self.schedule(self.agents[partner].react(delivered, now))

    def run(self, initial: list[Action], bad: list[tuple[dt.datetime, int, str]], speed: float) -> None:
        self.schedule(initial)
        bad_queue = sorted(bad)
        now = START
        end_fine = START + SPAN + ACTIVE
        while True:
            next_at = self.queue[0][0] if self.queue else None
            step = now + FINE if now < end_fine else None
            candidates = [t for t in (next_at, step) if t is not None]
            if not candidates:
                if now >= START + HORIZON:
                    break
                candidates = [START + HORIZON]
            target = max(min(candidates), now)
            if speed > 0:
                time.sleep(min(5.0, (target - now).total_seconds() / speed))
            ids: set[str] = set()
            while self.queue and self.queue[0][0] <= target:
                _, _, action = heapq.heappop(self.queue)
                self.publish(action)
                ids.add(action.ce_id)
                self.schedule(self.agents[action.partner].own_event(action))
            while bad_queue and bad_queue[0][0] <= target:
                at, kind, zaak = bad_queue.pop(0)
                self.publish_bad(kind, zaak, at)
            self.settle(ids)
            self.escalations_fired += self.clock.tick(target)
            self.settle(set())
            self.deliver(target)
            now = target
            self.progress(now)
            if not self.queue and now >= START + HORIZON:
                break
        if not self.quiet and sys.stderr.isatty():
            print(file=sys.stderr)

    def progress(self, now: dt.datetime) -> None:
        if self.quiet:
            return
        line = (
            f"[{now:%Y-%m-%d %H:%M}] cases {self.summary.cases}  events {len(self.routed)}  "
            f"deliveries {self.deliveries}  escalations {self.escalations_fired}  dlq {self.dead}"
        )
        if sys.stderr.isatty():
            print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
        elif time.monotonic() - self._last_progress > 5:  # a log, not a terminal: a line now and then
            self._last_progress = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    _last_progress = 0.0

    def close(self) -> None:
        self.producer.close()
        self.clock.close()
        for r in [*self.outboxes.values(), self.ledger]:
            r.close()


# -- checking and counting ----------------------------------------------------------------------


def audit(bootstrap: str, policy: policy_mod.Policy, summary: Summary) -> None:
    """Check every delivery against the policy, from the topics alone, and count."""
    codec = default_codec()
    reader = Reader(bootstrap, [topics.EVENTS, topics.VERSTREKKINGEN, topics.DLQ, *topics.OUTBOXES])
    events: dict[str, tuple[Any, str, dict[str, Any], str]] = {}
    delivered: dict[tuple[str, str], list[Any]] = defaultdict(list)
    register: Counter[tuple[str, str]] = Counter()
    for m in reader.drain():
        if m.topic == topics.EVENTS:
            if header(m.headers, "ce_type") == TICK_TYPE:
                continue  # the virtual clock's ticks ride along in keten.events
            env = Envelope.from_headers(m.headers)
            fam, record = codec.decode(m.value)
            events[env.id] = (fam, env.type, record, env.partner)
            summary.families[fam.name] += 1
            summary.routed_from[env.partner] += 1
            if fam.name == "Escalatie":
                summary.escalations[(record["timer"], record["stap"])] += 1
        elif m.topic == topics.VERSTREKKINGEN:
            _, v = codec.decode(m.value)
            register[(v["event_id"], v["ontvanger"].replace("_", "-"))] += 1
            summary.verstrekkingen += 1
        elif m.topic == topics.DLQ:
            summary.dlq[header(m.headers, "ketenbus_reden") or "?"] += 1
        else:
            delivered[(header(m.headers, "ce_id") or "", m.topic.removeprefix("keten.out."))].append(m)
    reader.close()
    for ce_id, (fam, ce_type, record, producer) in events.items():
        others = [p for p in PARTNERS if p != producer]
        for partner, decision in policy.decide(fam, ce_type, record, others).items():
            got = delivered.pop((ce_id, partner), [])
            if decision.outcome == "denied":
                summary.denied[partner] += 1
            elif decision.outcome == "narrowed":
                summary.narrowed[partner] += 1
            if not decision.allowed:
                if got:
                    summary.breaches.append(f"{partner} received {ce_type} {ce_id}: no rule allows it")
                continue
            if len(got) != 1:
                summary.breaches.append(
                    f"{partner} received {ce_type} {ce_id} {len(got)} times, expected once"
                )
                continue
            _, written = codec.decode(got[0].value, resolve=False, fields_hint=fields_of(got[0].headers))
            if set(written) != decision.fields:
                extra = sorted(set(written) - decision.fields)
                summary.breaches.append(
                    f"{partner} received {ce_type} {ce_id} with fields {extra} not released"
                )
            if register[(ce_id, partner)] != 1:
                summary.breaches.append(
                    f"{partner}/{ce_id}: {register[(ce_id, partner)]} Verstrekking records"
                )
            summary.received[partner] += 1
            summary.fields_released[partner] += len(set(written) - fam.required_fields)
    for (ce_id, partner), got in delivered.items():
        summary.breaches.append(f"{partner} received {len(got)} record(s) {ce_id} of no routed event")


def run(
    cases: int = 40, seed: int = 7, speed: float = 0.0, bootstrap: str | None = None, quiet: bool = False
) -> int:
    started = time.monotonic()
    summary = simulate(cases, seed, speed, bootstrap, quiet)
    print(summary.render())
    print(
        f"virtual time {START:%Y-%m-%d} .. {START + HORIZON:%Y-%m-%d}; "
        f"wall time {time.monotonic() - started:.0f} s"
    )
    if os.environ.get("KETENBUS_DEMO_SUMMARY"):
        with open(os.environ["KETENBUS_DEMO_SUMMARY"], "w", encoding="utf-8") as f:
            json.dump(summary.as_dict(), f, indent=2)
    return 1 if summary.breaches else 0


def simulate(
    cases: int = 40, seed: int = 7, speed: float = 0.0, bootstrap: str | None = None, quiet: bool = False
) -> Summary:
    """Run the chain and audit it; the Summary says what happened."""
    settings = Settings()
    policy = policy_mod.load(settings.policy_file)
    termijnen = load_termijnen(settings.termijnen_file)
    summary = Summary(
        cases=cases, timers=[t.name for t in termijnen.timers] + [p.name for p in termijnen.patterns]
    )
    initial = generate(cases, seed, START, SPAN)
    zaken = sorted({a.datum["zaak_ref"] for a in initial})
    bad = [
        (START + SPAN * (i + 1) / (cases // BAD_EVERY + 1), i % 3, f"{zaak}-X")
        for i, zaak in enumerate(zaken[::BAD_EVERY])
    ]
    with bootstrap_or_embedded(bootstrap or settings.bootstrap) as server:
        topics.provision(server, settings.partitions)
        print(f"ketenbus demo: broker {server}; starting router and timer worker...", file=sys.stderr)
        with workers(server, seed) as metrics_url:
            print(f"metrics while it runs: {metrics_url}", file=sys.stderr)
            chain = Chain(server, seed, summary, quiet)
            try:
                chain.clock.tick(START - dt.timedelta(days=1), timeout=120)  # workers ready
                chain.run(initial, bad, speed)
            finally:
                chain.close()
            audit(server, policy, summary)
    return summary
