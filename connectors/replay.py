"""`ketenbus replay`: run scenario files (and recordings) against a real bus, with verdicts.

Each scenario gets its own case and person references (unique per run), so scenarios never
share state. By default every scenario runs on a fresh embedded broker with its own router and
timer worker; `shared=True` (or an external `--bootstrap`) runs them one after another on one
bus. The virtual clock never goes back, so on a shared bus scenarios run in order of their
start; a scenario with `start: relative` starts on the next Monday 09:00 (Amsterdam) after the
bus clock; a fixed start before the bus clock is refused (run it on its own bus).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from connectors.harness import Bus, Sent, running_bus
from connectors.scenario import BAD_KINDS, DataBuilder, Expectation, Scenario, Step
from schemas import Envelope, default_codec
from schemas.envelope import fields_of, header
from schemas.registry import family
from streams import topics
from streams.deadlines import AMSTERDAM

RELATIVE_FROM = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)  # Monday 5 January 2026, 09:00 local


@dataclass
class Verdict:
    expectation: Expectation
    passed: bool
    message: str  # what was expected and what was observed

    def render(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        text = f"  {mark} {self.expectation.where} {self.expectation.describe()}"
        return text if self.passed else f"{text}\n       {self.message}"


@dataclass
class Outcome:
    scenario: Scenario
    start: dt.datetime | None
    verdicts: list[Verdict] = field(default_factory=list)
    error: str | None = None
    wall: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(v.passed for v in self.verdicts)

    def render(self) -> str:
        sc = self.scenario
        head = f"scenario {sc.name} ({sc.path})"
        if self.error:
            return f"{head}: ERROR {self.error}"
        ok = sum(v.passed for v in self.verdicts)
        when = f"{self.start:%Y-%m-%d %H:%M} UTC" if self.start else "-"
        lines = [f"{head}: {ok}/{len(self.verdicts)} passed, start {when}, wall {self.wall:.2f} s"]
        lines += [v.render() for v in self.verdicts]
        return "\n".join(lines)


# -- running ------------------------------------------------------------------------------------


def next_monday_morning(after: dt.datetime) -> dt.datetime:
    local = after.astimezone(AMSTERDAM) + dt.timedelta(days=1)
    day = local.date() + dt.timedelta(days=(7 - local.weekday()) % 7)
    return dt.datetime.combine(day, dt.time(9, 0), AMSTERDAM).astimezone(dt.UTC)


def run_scenario(bus: Bus, sc: Scenario, start: dt.datetime) -> Outcome:
    """Run one scenario from `start` on `bus` (whose clock is before `start`) and judge it."""
    return run_together(bus, [(sc, start)])[0]


def run_together(bus: Bus, runs: Sequence[tuple[Scenario, dt.datetime]]) -> list[Outcome]:
    """Run scenarios on one bus at once, their steps merged in time order, and judge each.

    They cannot see each other: every scenario has its own case and person references."""
    began = time.monotonic()
    builders: list[DataBuilder] = []
    refs_of: list[dict[str, str]] = []
    timeline: dict[dt.datetime, list[tuple[int, int]]] = {}
    for n, (sc, start) in enumerate(runs):
        run = uuid.uuid4().hex[:8]
        slug = "".join(c if c.isalnum() else "-" for c in sc.path.stem)[:24]
        refs = {z: f"SC-{slug}-{z}-{run}" for z in sc.zaken}
        builder = DataBuilder(sc, refs, start)
        builders.append(builder)
        refs_of.append(refs)
        for i, step in enumerate(sc.steps):
            timeline.setdefault(builder.at(step), []).append((n, i))
    for t in sorted(timeline):
        bus.tick(t)
        sent: list[Sent] = []
        for n, i in timeline[t]:
            sent.append(publish_step(bus, runs[n][0].steps[i], builders[n], refs_of[n]))
        bus.settle(sent)
    bus.tick(max(sc.horizon(start) for sc, start in runs))
    quiesce(bus)
    outcomes = []
    for n, (sc, start) in enumerate(runs):
        outcome = Outcome(sc, start)
        for e in sc.expectations:
            base = builders[n].at(sc.steps[e.step]) if e.step is not None else start
            outcome.verdicts.append(judge(bus, e, refs_of[n][e.zaak], base))
        outcome.wall = time.monotonic() - began
        outcomes.append(outcome)
    return outcomes


def publish_step(bus: Bus, step: Step, builder: DataBuilder, refs: dict[str, str]) -> Sent:
    zaak = refs[step.zaak]
    at = builder.at(step)
    fam = family(step.family)
    ce_type = fam.ce_type(step.stap)
    inbox = topics.inbox(step.partner)
    source = step.spoof_source or step.partner
    env = Envelope.new(source, ce_type, zaak, at)
    headers = env.to_headers()
    if step.raw is not None:
        return bus.send(inbox, zaak.encode(), step.raw, headers)
    if step.bad is not None:
        datum = _minimal(step, zaak, at)
        value = default_codec().encode(step.family, datum)
        kind = step.bad
        if kind == "not_avro":
            value = b"{}"
        elif kind == "empty":
            value = b""
        elif kind == "truncated":
            value = value[:-2] if len(value) > 12 else value[:11]
        elif kind == "bad_magic":
            value = b"\xc3\x02" + value[2:]
        elif kind == "no_headers":
            headers = []
        elif kind == "unknown_type":
            headers = [(k, b"nl.ketenbus.onbekend.stap" if k == "ce_type" else v) for k, v in headers]
        assert kind in BAD_KINDS
        return bus.send(inbox, zaak.encode(), value, headers)
    datum = builder.datum(step)
    return bus.send(inbox, zaak.encode(), default_codec().encode(step.family, datum), headers)


def _minimal(step: Step, zaak: str, at: dt.datetime) -> dict[str, Any]:
    datum: dict[str, Any] = {"stap": step.stap, "zaak_ref": zaak, "tijdstip": at}
    if step.family == "SlachtofferdeviceAlert":
        datum["alarm_id"] = "A-bad"
    return datum


def quiesce(bus: Bus, quiet: float = 0.05, timeout: float = 5) -> None:
    """Collect until nothing new arrives for `quiet` seconds (outboxes trail keten.events)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        bus.collect()
        now = len(bus.events) + len(bus.dead) + len(bus.delivered)
        if now == last:
            return
        last = now
        time.sleep(quiet)


# -- judging ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    partner: str
    ce_id: str
    ce_type: str
    time: dt.datetime
    fields: frozenset[str]


def deliveries(bus: Bus, zaak: str) -> list[Delivery]:
    out = []
    for m in bus.delivered:
        if header(m.headers, "ce_subject") != zaak:
            continue
        env = Envelope.from_headers(m.headers)
        fam, step = _resolve(env.type)
        fields = fields_of(m.headers) or frozenset()
        out.append(Delivery(m.topic.removeprefix("keten.out."), env.id, f"{fam}.{step}", env.time, fields))
    return out


def _resolve(ce_type: str) -> tuple[str, str]:
    from schemas.registry import resolve_type

    fam, step = resolve_type(ce_type)
    return fam.name, step


def escalations(bus: Bus, zaak: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for m in bus.events:
        if header(m.headers, "ce_subject") != zaak:
            continue
        if not (header(m.headers, "ce_type") or "").startswith("nl.ketenbus.escalatie."):
            continue
        _, record = default_codec().decode(m.value)
        out.append((header(m.headers, "ce_id") or "", record))
    return out


def _t(t: dt.datetime) -> str:
    return t.astimezone(AMSTERDAM).strftime("%Y-%m-%d %H:%M:%S %Z")


def judge(bus: Bus, e: Expectation, zaak: str, base: dt.datetime) -> Verdict:
    if e.kind in ("delivered", "not_delivered"):
        got = [d for d in deliveries(bus, zaak) if d.partner == e.to[0] and d.ce_type == e.type]
        if e.kind == "not_delivered":
            if got:
                seen = ", ".join(f"{d.ce_type} at {_t(d.time)} with {sorted(d.fields)}" for d in got)
                return Verdict(e, False, f"expected: no {e.type} to {e.to[0]}; observed: {seen}")
            return Verdict(e, True, "")
        if not got:
            other = sorted({d.ce_type for d in deliveries(bus, zaak) if d.partner == e.to[0]})
            return Verdict(
                e,
                False,
                f"expected: {e.type} to {e.to[0]}; observed: none ({e.to[0]} received {other or 'nothing'})",
            )
        limit = e.within.after(base, deadline=True) if e.within else None
        for d in got:
            if (
                (limit is None or d.time <= limit)
                and set(e.fields) <= d.fields
                and not (set(e.absent) & d.fields)
            ):
                return Verdict(e, True, "")
        want = f"{e.type} to {e.to[0]}"
        if limit:
            want += f" by {_t(limit)}"
        if e.fields:
            want += f" with {list(e.fields)}"
        if e.absent:
            want += f" without {list(e.absent)}"
        seen = "; ".join(f"at {_t(d.time)} fields {sorted(d.fields)}" for d in got)
        return Verdict(e, False, f"expected: {want}; observed: {seen}")
    if e.kind in ("escalated", "not_escalated"):
        esc = [
            (ce_id, r)
            for ce_id, r in escalations(bus, zaak)
            if r["timer"] == e.timer and (e.stap is None or r["stap"] == e.stap)
        ]
        limit = e.by.after(base, deadline=True) if e.by else None
        timely = [(i, r) for i, r in esc if limit is None or r["tijdstip"] <= limit]
        seen = "; ".join(f"{r['timer']}/{r['stap']} at {_t(r['tijdstip'])}" for _, r in esc) or "none"
        what = f"{e.timer}" + (f"/{e.stap}" if e.stap else "") + (f" by {_t(limit)}" if limit else "")
        if e.kind == "not_escalated":
            if timely:
                return Verdict(e, False, f"expected: no escalation {what}; observed: {seen}")
            return Verdict(e, True, "")
        if not timely:
            return Verdict(e, False, f"expected: escalation {what}; observed: {seen}")
        ds = deliveries(bus, zaak)
        for ce_id, _r in timely:
            reached = {d.partner for d in ds if d.ce_id == ce_id}
            if set(e.to) <= reached:
                return Verdict(e, True, "")
        reached_all = [sorted({d.partner for d in ds if d.ce_id == i}) for i, _ in timely]
        return Verdict(
            e,
            False,
            f"expected: escalation {what} delivered to {list(e.to)}; observed: delivered to {reached_all}",
        )
    # dead_lettered
    dead = [m for m in bus.dead if header(m.headers, "ce_subject") == zaak]
    reasons = [(header(m.headers, "ketenbus_reden"), Envelope.from_headers(m.headers).time) for m in dead]
    limit = e.within.after(base, deadline=True) if e.within else None
    if any(r == e.reason for r, _ in reasons):
        return Verdict(e, True, "")
    return Verdict(
        e, False, f"expected: dead letter {e.reason}; observed: {[r for r, _ in reasons] or 'none'}"
    )


# -- many scenarios ------------------------------------------------------------------------------


def run_all(
    scenarios: Sequence[Scenario],
    *,
    bootstrap: str | None = None,
    shared: bool = False,
    start_workers: bool | None = None,
    echo: Any = print,
) -> list[Outcome]:
    """Run `scenarios`: each on a fresh bus, or (`shared`, or an external `bootstrap`) one
    after another on one bus, ordered by start."""
    outcomes: list[Outcome] = []
    if bootstrap is None and not shared:
        for sc in scenarios:
            start = sc.start or RELATIVE_FROM
            with running_bus(None, ready_at=start - dt.timedelta(minutes=1)) as bus:
                outcome = run_scenario(bus, sc, start)
            echo(outcome.render())
            outcomes.append(outcome)
        return outcomes
    first = min((s.start for s in scenarios if s.start is not None), default=RELATIVE_FROM)
    with running_bus(bootstrap, start_workers=start_workers, ready_at=first - dt.timedelta(minutes=1)) as bus:
        now = bus.now or RELATIVE_FROM
        relative_start = next_monday_morning(now)
        runs: list[tuple[Scenario, dt.datetime]] = []
        for sc in scenarios:
            start = sc.start or relative_start
            if start <= now:
                error = (
                    f"starts {_t(start)}, before the bus clock {_t(now)}: "
                    "run it on its own bus or use `start: relative`"
                )
                outcomes.append(Outcome(sc, start, error=error))
            else:
                runs.append((sc, start))
        if runs:
            outcomes.extend(run_together(bus, runs))
    for o in outcomes:
        echo(o.render())
    return outcomes


def junit(outcomes: Iterable[Outcome], path: str | Path) -> None:
    outcomes = list(outcomes)
    suite = ET.Element("testsuite", name="ketenbus-replay")
    tests = failures = errors = 0
    for o in outcomes:
        if o.error:
            errors += 1
            case = ET.SubElement(suite, "testcase", classname=o.scenario.name, name=str(o.scenario.path))
            ET.SubElement(case, "error", message=o.error)
            continue
        for v in o.verdicts:
            tests += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=o.scenario.name,
                name=f"{v.expectation.where} {v.expectation.describe()}",
                time=f"{o.wall / max(1, len(o.verdicts)):.3f}",
            )
            if not v.passed:
                failures += 1
                ET.SubElement(case, "failure", message=v.message).text = v.message
    suite.set("tests", str(tests + errors))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.ElementTree(suite).write(str(path), encoding="utf-8", xml_declaration=True)
