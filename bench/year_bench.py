"""A synthetic national year, replayed at virtual time by the router and the timer worker.

Two steps:

1. **Record** the year (one subprocess, not timed as the figure). The demo's chain
   (`connectors.demo`) without a broker: the case generator opens `CASES_PER_WEEK` cases a week
   through 2026 (a week at a time, as the clock gets there), the seven simulated partners react to
   what arrives in their outboxes, and the bus's core (`Core`) does its work on every event. The
   clock ticks every `STEP`; after the last week it jumps from deadline to deadline until every
   one has fired (`events`, when not 0, stops it early: for quick runs). What each worker read is written to
   a file, in order, with the ticks: the router's inbox records (the partners' and the
   escalations) and the timer worker's `keten.events` records.
2. **Replay** (timed): the router and the timer worker, each in its own process, at the same
   time, each working off its file as it would its topics, on the virtual clock:
   - router: `Router.route` on every inbox record (checks, policy, projections, Verstrekkingen,
     every output encoded as on the wire);
   - timer worker: decode, `TimerBook.on_event` and `RadarBook` on every `keten.events` record,
     partitioned as the router's writer partitions it; at each tick the deadlines due in each
     partition fire, and every escalation is encoded as the record the worker writes.
   Both must do what the recording did (events, outbox records, dead letters, escalations,
   deadlines left): a difference fails the benchmark. The figure is the wall time until both are
   done, and the peak resident set (VmHWM) of the two processes.

No broker on purpose: the Kafka hops are what the router benchmark measures (router in-events/s
through the embedded broker, against a plain relay); a year through the embedded broker on this
machine takes at least events / (that rate). What this measures is the year's work in the bus's
own code, laid out as production runs it: two workers, each on its own core. The workers here
read files written in advance, so they never wait for each other, as they would on a bus where
escalations go round through the router.

The baseline is the router alone: `Router.route` over the first `BASELINE_RECORDS` partner
records, scaled to all of them.

`python -m bench.year_bench record EVENTS SEED DIR`, `replay-router FILE`, `replay-timers FILE`
and `route-only FILE` are the subprocesses (they print JSON).
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import json
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAME = "national_year"
EVENTS = 0  # the whole year; 2,400 cases a week make it about 1.08 million events
MIN_EVENTS = 1_000_000  # what a national year must hold (issue 9); fewer is reported, not hidden
CASES_PER_WEEK = 2_400  # about 125,000 cases a year (DOMAIN.md "Volumes": 10^5-10^6 events)
SEED = 20260304
STEP = dt.timedelta(hours=6)
START = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)  # Monday 5 January 2026, 08:00 Amsterdam
WEEK = dt.timedelta(days=7)
WEEKS = 52
PARTITIONS = 3
PROGRESS_EVERY = 100_000
BASELINE_RECORDS = 20_000
ROUTER_FILE, TIMERS_FILE = "router.pickle", "timers.pickle"
REPO = Path(__file__).resolve().parent.parent

#: One item of the recording: ("E", topic, key, value, headers) or ("T", now_ms).
Item = tuple[Any, ...]


def _log(message: str) -> None:
    print(f"  [year bench] {message}", file=sys.stderr, flush=True)


class Core:
    """The bus's pure core, as the router and the timer worker run it, without Kafka."""

    def __init__(self) -> None:
        from aiokafka.partitioner import DefaultPartitioner

        from schemas import default_codec
        from streams import policy as policy_mod
        from streams.deadlines import load_termijnen
        from streams.router import Router
        from streams.settings import Settings
        from streams.timers import RadarBook, TimerBook

        settings = Settings()
        termijnen = load_termijnen(settings.termijnen_file)
        self.codec = default_codec()
        self.now = START
        self.router = Router(policy_mod.load(settings.policy_file), self.codec, clock=lambda: self.now)
        self.book, self.radar = TimerBook(termijnen), RadarBook(termijnen)
        self._partitioner = DefaultPartitioner()
        self.partitions = list(range(PARTITIONS))
        self.counts: Counter[str] = Counter()
        self.router_input: list[Item] = []  # what the router read, in order (when recording)
        self.timers_input: list[Item] = []  # what the timer worker read, in order

    def route(self, rec: Any) -> list[Any]:
        """Route one inbox record, give its keten.events record to the timers, and route every
        escalation that causes. Returns the outbox records written."""
        from schemas import Envelope
        from streams import topics

        self.router_input.append(("E", rec.topic, rec.key, rec.value, rec.headers))
        outcome = self.router.route(rec)
        self.counts["events"] += 1
        if outcome.dead_letter:
            self.counts[f"dlq:{outcome.dead_letter}"] += 1
        fired, patterns, delivered = [], [], []
        for out in outcome.records:
            if out.topic == topics.EVENTS:
                self.timers_input.append(("K", out.key, out.value, out.headers))
                partition = int(self._partitioner(out.key, self.partitions, self.partitions))
                env = Envelope.from_headers(out.headers)
                _, record = self.codec.decode(out.value)
                fired += self.book.on_event(env.type, record, env.id, partition)
                for pattern, person, rol in self.radar.observations(env.type, record):
                    zaak, at = record["zaak_ref"], record["tijdstip"]
                    esc, key, state = self.radar.observe(pattern, person, zaak, at, env.id, rol)
                    self.radar.store[key] = state
                    if esc is not None:
                        patterns.append(esc)
            elif out.topic.startswith("keten.out."):
                delivered.append(out)
        self.counts["deliveries"] += len(delivered)
        self.book.confirm(fired)
        for esc in [*fired, *patterns]:
            delivered += self.escalate(esc)
        return delivered

    def escalate(self, esc: Any) -> list[Any]:
        from schemas.registry import BUS
        from streams import topics
        from streams.router import InRecord
        from streams.timer_worker import escalation_record

        self.counts["escalations"] += 1
        out = escalation_record(self.codec, esc)
        offset = self.counts["escalations"]
        return self.route(InRecord(topics.inbox(BUS), 0, offset, out.key, out.value, out.headers))

    def tick(self, now: dt.datetime) -> list[Any]:
        """Fire what is due at `now` in every partition; returns the outbox records written."""
        from streams.timers import to_ms

        self.now = now
        self.router_input.append(("T", to_ms(now)))
        self.timers_input.append(("T", to_ms(now)))
        fired = [e for p in self.partitions for e in self.book.due(p, to_ms(now))]
        self.book.confirm(fired)
        return [out for esc in fired for out in self.escalate(esc)]


# -- 1. record -----------------------------------------------------------------------------------


def record(events: int, seed: int, directory: Path) -> dict[str, Any]:
    from connectors.generator import generate
    from connectors.partners import Action, Delivered, agents
    from schemas import Envelope
    from schemas.envelope import source_for
    from streams import topics
    from streams.router import InRecord
    from streams.timers import from_ms

    core = Core()
    limit = events or sys.maxsize
    partners = agents(seed)
    queue: list[tuple[dt.datetime, str, Action]] = []
    started = time.perf_counter()
    reported = 0
    week = 0
    end = START + WEEKS * WEEK
    with open(directory / ROUTER_FILE, "wb") as router_out, open(directory / TIMERS_FILE, "wb") as timers_out:

        def deliver(records: list[Any], now: dt.datetime) -> None:
            for rec in records:
                delivered = Delivered.decode(rec.value, rec.headers)
                partner = rec.topic.removeprefix("keten.out.")
                for a in partners[partner].react(delivered, now):
                    heapq.heappush(queue, (a.at, a.ce_id, a))

        pending: list[Any] = []
        while core.counts["events"] < limit:
            if week < WEEKS and (not queue or queue[0][0] >= START + week * WEEK - STEP):
                for a in generate(CASES_PER_WEEK, seed * 1000 + week, START + week * WEEK, WEEK):
                    heapq.heappush(queue, (a.at, a.ce_id, a))
                core.counts["cases"] += CASES_PER_WEEK
                week += 1
            dues = [d for d in (core.book.next_due(p) for p in core.partitions) if d is not None]
            if not queue and not dues and week >= WEEKS:
                break
            if core.now < end:
                target = core.now + STEP
            else:  # the year is over: from one due moment to the next
                target = min([from_ms(d) for d in dues] + [queue[0][0]] * bool(queue))
            target = max(target, core.now)
            while queue and queue[0][0] <= target and core.counts["events"] < limit:
                _, _, action = heapq.heappop(queue)
                source = source_for(action.partner)
                env = Envelope(action.ce_id, source, action.ce_type, action.at, action.zaak)
                value = core.codec.encode(action.family, action.datum)
                inbox, key = topics.inbox(action.partner), action.zaak.encode()
                pending += core.route(InRecord(inbox, 0, core.counts["events"], key, value, env.to_headers()))
                for a in partners[action.partner].own_event(action):
                    heapq.heappush(queue, (a.at, a.ce_id, a))
            pending += core.tick(target)
            deliver(pending, target)
            pending.clear()
            for items, out in ((core.router_input, router_out), (core.timers_input, timers_out)):
                pickle.dump(items, out, protocol=pickle.HIGHEST_PROTOCOL)
                items.clear()
            if core.counts["events"] >= reported + PROGRESS_EVERY:
                reported = core.counts["events"] // PROGRESS_EVERY * PROGRESS_EVERY
                _log(
                    f"recording: {core.counts['events']:,} events, virtual {core.now:%Y-%m-%d}, "
                    f"{time.perf_counter() - started:.0f} s"
                )
    return {
        **_counts(core),
        "cases": core.counts["cases"],
        "virtual_until": core.now.isoformat(),
        "record_s": round(time.perf_counter() - started, 1),
        "file_mib": round(sum((directory / f).stat().st_size for f in (ROUTER_FILE, TIMERS_FILE)) / 2**20, 1),
    }


def _counts(core: Core) -> dict[str, Any]:
    return {
        "events": core.counts["events"],
        "escalations": core.counts["escalations"],
        "deliveries": core.counts["deliveries"],
        "dead_letters": {k[4:]: v for k, v in core.counts.items() if k.startswith("dlq:")},
        "pending_deadlines_at_end": core.book.pending_total,
    }


# -- 2. replay -----------------------------------------------------------------------------------


def _items(path: Path) -> Iterator[Item]:
    with open(path, "rb") as f:
        while True:
            try:
                yield from pickle.load(f)
            except EOFError:
                return


def replay_router(path: Path) -> dict[str, Any]:
    """The router's year: every inbox record (partners' and escalations) in order."""
    from bench.timers_bench import _peak_kib
    from streams.router import InRecord
    from streams.timers import from_ms

    core = Core()
    router = core.router
    gc.collect()
    peak0 = _peak_kib()
    counts: Counter[str] = Counter()
    clock = time.perf_counter
    started = clock()
    for item in _items(path):
        if item[0] == "T":
            core.now = from_ms(item[1])  # the clock the Verstrekkingen are stamped with
            continue
        outcome = router.route(InRecord(item[1], 0, counts["events"], item[2], item[3], item[4]))
        counts["events"] += 1
        counts["deliveries"] += sum(1 for r in outcome.records if r.topic.startswith("keten.out."))
        if outcome.dead_letter:
            counts[f"dlq:{outcome.dead_letter}"] += 1
    wall_s = clock() - started
    peak1 = _peak_kib()
    return {
        "events": counts["events"],
        "deliveries": counts["deliveries"],
        "dead_letters": {k[4:]: v for k, v in counts.items() if k.startswith("dlq:")},
        "replay_s": round(wall_s, 1),
        "peak_rss_growth_mib": round((peak1 - peak0) / 1024, 1),
        "peak_rss_mib": round(peak1 / 1024, 1),
    }


def replay_timers(path: Path) -> dict[str, Any]:
    """The timer worker's year: every record on keten.events and every tick, in order; each
    escalation is encoded as the record the worker writes."""
    from bench.timers_bench import _peak_kib
    from schemas import Envelope
    from streams.timer_worker import escalation_record

    core = Core()
    book, radar, codec = core.book, core.radar, core.codec
    gc.collect()
    peak0 = _peak_kib()
    escalations = 0
    clock = time.perf_counter
    started = clock()
    for item in _items(path):
        if item[0] == "T":
            fired = [e for p in core.partitions for e in book.due(p, item[1])]
        else:
            _, key, value, headers = item
            partition = int(core._partitioner(key, core.partitions, core.partitions))
            env = Envelope.from_headers(headers)
            _, record = codec.decode(value)
            fired = book.on_event(env.type, record, env.id, partition)
            for pattern, person, rol in radar.observations(env.type, record):
                esc, k, state = radar.observe(
                    pattern, person, record["zaak_ref"], record["tijdstip"], env.id, rol
                )
                radar.store[k] = state
                if esc is not None:
                    escalation_record(codec, esc)
                    escalations += 1
        for esc in fired:
            escalation_record(codec, esc)
        book.confirm(fired)
        escalations += len(fired)
    wall_s = clock() - started
    peak1 = _peak_kib()
    return {
        "escalations": escalations,
        "pending_deadlines_at_end": book.pending_total,
        "replay_s": round(wall_s, 1),
        "peak_rss_growth_mib": round((peak1 - peak0) / 1024, 1),
        "peak_rss_mib": round(peak1 / 1024, 1),
    }


def route_only(path: Path) -> dict[str, Any]:
    """The baseline: `Router.route` and nothing else, over the first partner records."""
    from streams.router import InRecord

    core = Core()
    records = []
    for item in _items(path):
        if item[0] == "E" and item[1] != "keten.in.ketenbus":
            records.append(InRecord(item[1], 0, len(records), item[2], item[3], item[4]))
            if len(records) >= BASELINE_RECORDS:
                break
    started = time.perf_counter()
    for rec in records:
        core.router.route(rec)
    return {"records": len(records), "seconds": time.perf_counter() - started}


# -- the benchmark -------------------------------------------------------------------------------


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.year_bench", *args]


def _subprocess(*args: str) -> dict[str, Any]:
    proc = subprocess.run(_command(*args), cwd=REPO, stdout=subprocess.PIPE, check=True)
    return dict(json.loads(proc.stdout))


def _together(*commands: list[str]) -> tuple[float, list[dict[str, Any]]]:
    """Run `commands` at the same time; (wall seconds until the last ended, their JSON)."""
    started = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=REPO, stdout=subprocess.PIPE) for c in commands]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - started
    for c, p in zip(commands, procs, strict=True):
        if p.returncode:
            raise RuntimeError(f"{' '.join(c[2:])} failed with status {p.returncode}")
    return wall, [json.loads(o) for o in outs]


def run(events: int = EVENTS, seed: int = SEED) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ketenbus-year-") as tmp:
        directory = Path(tmp)
        wanted = f"{events:,} events" if events else f"{WEEKS} weeks"
        _log(f"recording a national year: {wanted}, {CASES_PER_WEEK:,} new cases a week")
        rec = _subprocess("record", str(events), str(seed), tmp)
        _log(f"recorded {rec['events']:,} events in {rec['record_s']} s ({rec['file_mib']} MiB); replaying")
        wall, (router, timers) = _together(
            _command("replay-router", str(directory / ROUTER_FILE)),
            _command("replay-timers", str(directory / TIMERS_FILE)),
        )
        base = _subprocess("route-only", str(directory / ROUTER_FILE))
    expected = {
        "events": rec["events"],
        "deliveries": rec["deliveries"],
        "dead_letters": rec["dead_letters"],
        "escalations": rec["escalations"],
        "pending_deadlines_at_end": rec["pending_deadlines_at_end"],
    }
    replayed = {**router, **timers}
    differ = {k: (v, replayed[k]) for k, v in expected.items() if replayed[k] != v}
    if differ:
        raise AssertionError(f"the replay differs from the recording (recorded, replayed): {differ}")
    _log(
        f"replayed {router['events']:,} events in {wall:.1f} s (router {router['replay_s']} s, "
        f"timers {timers['replay_s']} s); peak RSS {router['peak_rss_mib']} + {timers['peak_rss_mib']} MiB"
    )
    partner_events = rec["events"] - rec["escalations"]
    return {
        "name": NAME,
        "parameters": {
            "events_wanted": events or "the whole year",
            "seed": seed,
            "cases_per_week": CASES_PER_WEEK,
            "tick_every_h": STEP.total_seconds() / 3600,
            "start": START.isoformat(),
            "replayed": (
                "the router's and the timer worker's year, each in its own process at the same time, "
                "from the recorded topics; no broker (see the module docstring)"
            ),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "figures": {
            "events": rec["events"],
            "at_least_a_million": rec["events"] >= MIN_EVENTS,
            "partner_events": partner_events,
            "escalations": rec["escalations"],
            "cases": rec["cases"],
            "outbox_records": rec["deliveries"],
            "dead_letters": sum(rec["dead_letters"].values()),
            "virtual_until": rec["virtual_until"][:10],
            "replay_wall_s": round(wall, 1),
            "router_s": router["replay_s"],
            "timers_s": timers["replay_s"],
            "events_per_s": round(rec["events"] / wall),
            "peak_rss_mib": round(router["peak_rss_mib"] + timers["peak_rss_mib"], 1),
            "router_peak_rss_mib": router["peak_rss_mib"],
            "timers_peak_rss_mib": timers["peak_rss_mib"],
            "pending_deadlines_at_end": timers["pending_deadlines_at_end"],
            "record_s": rec["record_s"],
        },
        "baseline": {
            "implementation": f"Router.route alone, partner events only (first {base['records']:,}, scaled)",
            "router_s": round(base["seconds"] * partner_events / max(1, base["records"]), 1),
        },
    }


if __name__ == "__main__":
    commands = {"replay-router": replay_router, "replay-timers": replay_timers, "route-only": route_only}
    if len(sys.argv) == 5 and sys.argv[1] == "record":
        print(json.dumps(record(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))))
    elif len(sys.argv) == 3 and sys.argv[1] in commands:
        print(json.dumps(commands[sys.argv[1]](Path(sys.argv[2]))))
    else:
        print(
            f"usage: python -m bench.year_bench record EVENTS SEED DIR | {{{','.join(commands)}}} FILE",
            file=sys.stderr,
        )
        sys.exit(2)
