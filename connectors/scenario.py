"""Scenario files for testers: format, loading and validation (the runner is connectors/replay.py).

A scenario is one YAML file (format in scenarios/README.md): a start time, steps at offsets
from it, and expectations about what the bus delivers, escalates and dead-letters. Every
mistake in a file (unknown key, partner, type, field, timer, reason, a value the schema
rejects) is reported with file and line before anything runs: the file is read with
`yaml.compose`, whose nodes carry `start_mark.line`.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas import envelope as envelope_mod
from schemas.codec import REASONS as CODEC_REASONS
from schemas.models import model_for, to_avro
from schemas.registry import PARTNERS, family, partner_symbol, resolve_type
from streams.deadlines import AMSTERDAM, END_OF_DAY, Termijnen, load_termijnen
from streams.settings import Settings
from streams.validation import REASONS as VALIDATION_REASONS

DEFAULT_ZAAK = "Z"
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "wd": "working_days"}
_OFFSET = re.compile(r"^\s*(?:\d+\s*(?:wd|s|m|h|d)\s*)+$")
_PART = re.compile(r"(\d+)\s*(wd|s|m|h|d)")
ENVELOPE_REASONS = tuple(
    v
    for k, v in vars(envelope_mod).items()
    if k.isupper() and isinstance(v, str) and v.startswith("envelope.")
)
REASONS = tuple(sorted({*CODEC_REASONS, *VALIDATION_REASONS, *ENVELOPE_REASONS}))
ESCALATIE_STEPS = family("Escalatie").steps
# named kinds of bad input for `bad:` (each with the reason the router gives it)
BAD_KINDS = {
    "not_avro": "codec.not_single_object",
    "empty": "codec.empty",
    "truncated": "codec.body_truncated",
    "bad_magic": "codec.bad_magic",
    "no_headers": "envelope.missing_attribute",
    "unknown_type": "envelope.unknown_type",
}

TOP_KEYS = {"name", "description", "start", "until", "steps", "expect"}
STEP_KEYS = {"at", "partner", "type", "zaak", "data", "id", "expect", "raw", "spoof_source", "bad"}
EXPECT_KEYS = {
    "delivered": ({"to", "type"}, {"within", "fields", "absent", "zaak"}),
    "not_delivered": ({"to", "type"}, {"zaak"}),
    "escalated": ({"timer"}, {"to", "by", "stap", "zaak"}),
    "not_escalated": ({"timer"}, {"stap", "by", "zaak"}),
    "dead_lettered": ({"reason"}, {"zaak", "within"}),
}


class ScenarioError(ValueError):
    """Problems in scenario files, each as `file:line: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Offset:
    """`30s`, `15m`, `2h`, `3d`, `5wd` or a sum such as `1d 2h`. Days are calendar days in
    Dutch local time (same clock time); `wd` are working days (termijnen.yaml calendar)."""

    text: str
    parts: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, value: Any) -> Offset:
        text = str(value)
        if isinstance(value, bool) or not _OFFSET.match(text):
            raise ValueError(f"{value!r} is no time offset (use e.g. 30s, 15m, 2h, 3d, 5wd, '1d 2h')")
        return cls(text.strip(), tuple((int(n), u) for n, u in _PART.findall(text)))

    def after(self, base: dt.datetime, deadline: bool = False) -> dt.datetime:
        """`base` plus this offset. With `deadline`, N working days end at the end of the Nth
        working day (as the bus's own working-day deadlines do)."""
        t = base
        for n, unit in self.parts:
            if unit == "s":
                t += dt.timedelta(seconds=n)
            elif unit == "m":
                t += dt.timedelta(minutes=n)
            elif unit == "h":
                t += dt.timedelta(hours=n)
            elif unit == "d":
                local = t.astimezone(AMSTERDAM)
                naive = local.replace(tzinfo=None) + dt.timedelta(days=n)
                t = naive.replace(tzinfo=AMSTERDAM).astimezone(dt.UTC)
            else:
                local = t.astimezone(AMSTERDAM)
                day = _termijnen().working_day_calendar().add_working_days(local.date(), n)
                clock = END_OF_DAY if deadline else local.timetz().replace(tzinfo=None)
                t = dt.datetime.combine(day, clock, AMSTERDAM).astimezone(dt.UTC)
        return t

    def __str__(self) -> str:
        return self.text


@cache
def _termijnen() -> Termijnen:
    return load_termijnen(Settings().termijnen_file)


def timer_names() -> tuple[str, ...]:
    t = _termijnen()
    return tuple(x.name for x in t.timers) + tuple(p.name for p in t.patterns)


@dataclass
class Expectation:
    file: str
    line: int
    kind: str
    zaak: str
    step: int | None  # index of the step it is relative to; None: the start
    to: tuple[str, ...] = ()
    type: str = ""  # Family.stap
    within: Offset | None = None  # delivered / dead_lettered: no later than base + within
    fields: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    timer: str = ""
    stap: str | None = None
    by: Offset | None = None
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        rel = f"step {self.step + 1}" if self.step is not None else "start"
        if self.kind == "delivered":
            s = f"delivered {self.type} to {self.to[0]} (zaak {self.zaak})"
            if self.within:
                s += f" within {self.within} of {rel}"
            if self.fields:
                s += f" with {list(self.fields)}"
            if self.absent:
                s += f" without {list(self.absent)}"
            return s
        if self.kind == "not_delivered":
            return f"not_delivered {self.type} to {self.to[0]} (zaak {self.zaak})"
        if self.kind in ("escalated", "not_escalated"):
            s = f"{self.kind} {self.timer}" + (f"/{self.stap}" if self.stap else "") + f" (zaak {self.zaak})"
            if self.to:
                s += f" to {list(self.to)}"
            if self.by:
                s += f" by {self.by} after {rel}"
            return s
        s = f"dead_lettered {self.reason} (zaak {self.zaak})"
        if self.within:
            s += f" within {self.within} of {rel}"
        return s


@dataclass
class Step:
    file: str
    line: int
    at: Offset
    partner: str
    type: str  # Family.stap
    zaak: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    raw: bytes | None = None
    spoof_source: str | None = None
    bad: str | None = None
    data_line: int = 0

    @property
    def family(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def stap(self) -> str:
        return self.type.split(".", 1)[1]


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    start: dt.datetime | None  # None: `start: relative` (the runner chooses)
    until: Offset | None
    steps: list[Step]
    expectations: list[Expectation]

    @property
    def zaken(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.steps:
            seen[s.zaak] = None
        for e in self.expectations:
            seen[e.zaak] = None
        return list(seen)

    def horizon(self, start: dt.datetime) -> dt.datetime:
        """The virtual time up to which the scenario runs."""
        if self.until is not None:
            return self.until.after(start, deadline=True)
        times = [s.at.after(start) for s in self.steps] or [start]
        for e in self.expectations:
            base = self.steps[e.step].at.after(start) if e.step is not None else start
            for off in (e.within, e.by):
                if off is not None:
                    times.append(off.after(base, deadline=True))
        return max(times) + dt.timedelta(minutes=1)


# -- loading --------------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[str] = []

    def err(self, node: yaml.Node | None, msg: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(f"{self.file}:{line}: {msg}")


def _py(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _mapping(
    ctx: _Ctx, node: yaml.Node, what: str, allowed: Iterable[str]
) -> dict[str, tuple[yaml.Node, Any]]:
    if not isinstance(node, yaml.MappingNode):
        ctx.err(node, f"{what} must be a mapping")
        return {}
    out: dict[str, tuple[yaml.Node, Any]] = {}
    allowed = set(allowed)
    for k, v in node.value:
        key = str(_py(k))
        if key not in allowed:
            ctx.err(k, f"unknown key {key!r} in {what} (known: {', '.join(sorted(allowed))})")
            continue
        out[key] = (v, _py(v))
    return out


def _partner(ctx: _Ctx, node: yaml.Node, value: Any) -> str | None:
    if value not in PARTNERS:
        ctx.err(node, f"unknown partner {value!r} (known: {', '.join(PARTNERS)})")
        return None
    return str(value)


def _type(ctx: _Ctx, node: yaml.Node, value: Any) -> str | None:
    try:
        fam, step = resolve_type(str(value))
    except (KeyError, ValueError):
        ctx.err(node, f"unknown type {value!r} (write Family.stap, e.g. Huisverbod.opgelegd)")
        return None
    return f"{fam.name}.{step}"


def _offset(ctx: _Ctx, node: yaml.Node, value: Any) -> Offset | None:
    try:
        return Offset.parse(value)
    except ValueError as e:
        ctx.err(node, str(e))
        return None


def load(path: str | Path) -> Scenario:
    """Read and check one scenario file; ScenarioError lists every problem with file:line."""
    path = Path(path)
    ctx = _Ctx(str(path))
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ScenarioError([f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {e}"]) from e
    if root is None:
        raise ScenarioError([f"{path}:1: empty scenario"])
    top = _mapping(ctx, root, "the scenario", TOP_KEYS)
    name = str(top["name"][1]) if "name" in top else path.stem
    start: dt.datetime | None = None
    if "start" not in top:
        ctx.err(root, "missing `start` (an ISO time with zone, or `relative`)")
    else:
        node, value = top["start"]
        if value == "relative":
            start = None
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            start = value.astimezone(dt.UTC)
        else:
            try:
                start = dt.datetime.fromisoformat(str(value))
                if start.tzinfo is None:
                    raise ValueError
                start = start.astimezone(dt.UTC)
            except ValueError:
                ctx.err(node, f"start {value!r} is no ISO time with a zone (e.g. 2026-03-02T09:00:00+01:00)")
    until = _offset(ctx, *top["until"]) if "until" in top else None
    steps: list[Step] = []
    expectations: list[Expectation] = []
    labels: dict[str, int] = {}
    steps_node = top.get("steps", (None, None))[0]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        ctx.err(steps_node or root, "`steps` must be a non-empty list")
    else:
        for i, snode in enumerate(steps_node.value):
            step = _step(ctx, snode, i, labels, expectations)
            if step is not None:
                steps.append(step)
    if "expect" in top:
        _expectations(ctx, top["expect"][0], None, DEFAULT_ZAAK if not steps else steps[0].zaak, expectations)
    if not expectations and not ctx.problems:
        ctx.err(root, "the scenario expects nothing")
    if ctx.problems:
        raise ScenarioError(ctx.problems)
    # a dry build of every datum, so a value the schema rejects is reported now, with its line
    sc = Scenario(
        path, name, str(top.get("description", (None, ""))[1] or ""), start, until, steps, expectations
    )
    check = start or dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    builder = DataBuilder(sc, {z: f"CHECK-{z}" for z in sc.zaken}, check)
    for s in steps:
        if s.raw is None and s.bad is None:
            try:
                builder.datum(s)
            except (ValidationError, ValueError, TypeError) as e:
                ctx.problems.append(
                    f"{s.file}:{s.data_line or s.line}: data of {s.type} is invalid: {_short(e)}"
                )
    if ctx.problems:
        raise ScenarioError(ctx.problems)
    return sc


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()[:5])
    return str(e)


def _step(
    ctx: _Ctx, node: yaml.Node, index: int, labels: dict[str, int], expectations: list[Expectation]
) -> Step | None:
    m = _mapping(ctx, node, f"step {index + 1}", STEP_KEYS)
    line = node.start_mark.line + 1
    for req in ("at", "partner", "type"):
        if req not in m and isinstance(node, yaml.MappingNode):
            ctx.err(node, f"step {index + 1} lacks `{req}`")
    if not all(k in m for k in ("at", "partner", "type")):
        return None
    at = _offset(ctx, *m["at"])
    partner = _partner(ctx, *m["partner"])
    type_ = _type(ctx, *m["type"])
    zaak = str(m["zaak"][1]) if "zaak" in m else DEFAULT_ZAAK
    step = Step(ctx.file, line, at or Offset("0s", ()), partner or "?", type_ or "?.?", zaak)
    if "id" in m:
        step.id = str(m["id"][1])
        labels[step.id] = index
    kinds = [k for k in ("raw", "spoof_source", "bad") if k in m]
    if len(kinds) > 1:
        ctx.err(node, f"a step is at most one of raw, spoof_source, bad (got {kinds})")
    if "raw" in m:
        rnode, rvalue = m["raw"]
        if isinstance(rvalue, dict) and set(rvalue) == {"base64"}:
            try:
                step.raw = base64.b64decode(str(rvalue["base64"]), validate=True)
            except ValueError:
                ctx.err(rnode, "raw.base64 is not valid base64")
        elif isinstance(rvalue, str):
            step.raw = rvalue.encode()
        elif isinstance(rvalue, bytes):
            step.raw = rvalue
        else:
            ctx.err(rnode, "raw is a string (its UTF-8 bytes) or {base64: ...}")
    if "spoof_source" in m:
        step.spoof_source = _partner(ctx, *m["spoof_source"])
        if step.spoof_source == partner:
            ctx.err(m["spoof_source"][0], "spoof_source must name another partner than `partner`")
    if "bad" in m:
        bnode, bvalue = m["bad"]
        if bvalue not in BAD_KINDS:
            ctx.err(bnode, f"unknown bad kind {bvalue!r} (known: {', '.join(BAD_KINDS)})")
        else:
            step.bad = str(bvalue)
    if partner and type_ and not kinds:
        fam_name, stap = type_.split(".")
        if partner not in family(fam_name).producers.get(stap, frozenset()):
            allowed = ", ".join(sorted(family(fam_name).producers.get(stap, ())))
            ctx.err(m["partner"][0], f"{partner} may not produce {type_} (producers: {allowed})")
    if "data" in m:
        dnode, dvalue = m["data"]
        if not isinstance(dvalue, dict):
            ctx.err(dnode, "data must be a mapping of field names to values")
        elif type_:
            fam = family(type_.split(".")[0])
            assert isinstance(dnode, yaml.MappingNode)
            for k, _v in dnode.value:
                key = str(_py(k))
                if key not in fam.field_names:
                    ctx.err(k, f"unknown field {key!r} of {fam.name} (known: {', '.join(fam.field_names)})")
                elif key in ("stap", "zaak_ref"):
                    ctx.err(k, f"{key} is set by the runner (use `type` and `zaak`)")
            step.data = dict(dvalue)
            step.data_line = dnode.start_mark.line + 1
    if "expect" in m:
        _expectations(ctx, m["expect"][0], index, zaak, expectations)
    return step


def _expectations(ctx: _Ctx, node: yaml.Node, step: int | None, zaak: str, out: list[Expectation]) -> None:
    if not isinstance(node, yaml.SequenceNode):
        ctx.err(node, "`expect` must be a list")
        return
    for item in node.value:
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            ctx.err(item, f"an expectation is one of: {', '.join(EXPECT_KEYS)}, e.g. `- delivered: {{...}}`")
            continue
        knode, vnode = item.value[0]
        kind = str(_py(knode))
        if kind not in EXPECT_KEYS:
            ctx.err(knode, f"unknown expectation {kind!r} (known: {', '.join(EXPECT_KEYS)})")
            continue
        required, optional = EXPECT_KEYS[kind]
        m = _mapping(ctx, vnode, kind, required | optional)
        missing = [r for r in sorted(required) if r not in m]
        if missing:
            ctx.err(vnode, f"{kind} lacks {', '.join(missing)}")
            continue
        e = Expectation(
            ctx.file, knode.start_mark.line + 1, kind, str(m["zaak"][1]) if "zaak" in m else zaak, step
        )
        if "to" in m:
            tnode, tvalue = m["to"]
            values = tvalue if isinstance(tvalue, list) else [tvalue]
            e.to = tuple(p for p in (_partner(ctx, tnode, v) for v in values) if p)
            if kind in ("delivered", "not_delivered") and len(values) != 1:
                ctx.err(tnode, f"{kind} names one partner in `to`")
        if "type" in m:
            e.type = _type(ctx, *m["type"]) or ""
        for key in ("fields", "absent"):
            if key in m:
                fnode, fvalue = m[key]
                values = fvalue if isinstance(fvalue, list) else [fvalue]
                if e.type:
                    fam = family(e.type.split(".")[0])
                    for f in values:
                        if f not in fam.field_names:
                            ctx.err(fnode, f"unknown field {f!r} of {fam.name} in `{key}`")
                setattr(e, key, tuple(str(v) for v in values))
        if "within" in m:
            e.within = _offset(ctx, *m["within"])
        if "by" in m:
            e.by = _offset(ctx, *m["by"])
        if "timer" in m:
            tnode, tvalue = m["timer"]
            if tvalue not in timer_names():
                ctx.err(tnode, f"unknown timer {tvalue!r} (known: {', '.join(timer_names())})")
            e.timer = str(tvalue)
        if "stap" in m:
            snode, svalue = m["stap"]
            if svalue not in ESCALATIE_STEPS:
                ctx.err(snode, f"unknown escalation stap {svalue!r} (known: {', '.join(ESCALATIE_STEPS)})")
            e.stap = str(svalue)
        if "reason" in m:
            rnode, rvalue = m["reason"]
            if rvalue not in REASONS:
                ctx.err(rnode, f"unknown reason {rvalue!r} (known: {', '.join(REASONS)})")
            e.reason = str(rvalue)
        out.append(e)


def load_all(paths: Iterable[str | Path]) -> list[Scenario]:
    """Every scenario under `paths` (files, or directories: their *.yaml); all problems at once."""
    problems: list[str] = []
    scenarios: list[Scenario] = []
    for p in scenario_files(paths):
        try:
            scenarios.append(load(p))
        except ScenarioError as e:
            problems.extend(e.problems)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            out.append(p)
    return out


# -- data -----------------------------------------------------------------------------------------


class DataBuilder:
    """Complete data for each step: the runner's zaak_ref and tijdstip, person aliases mapped to
    unique synthetic refs, and synthetic values for what the scenario leaves out."""

    def __init__(self, scenario: Scenario, zaak_refs: Mapping[str, str], start: dt.datetime) -> None:
        self.scenario = scenario
        self.zaak_refs = dict(zaak_refs)
        self.start = start
        self.persons: dict[str, str] = {}
        self.huisverbod: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        self.suffix = next(iter(self.zaak_refs.values()), "X").rsplit("-", 1)[-1]

    def person(self, alias: str) -> str:
        if alias not in self.persons:
            self.persons[alias] = f"P-{alias}-{self.suffix}"
        return self.persons[alias]

    def at(self, step: Step) -> dt.datetime:
        t = step.at.after(self.start)
        return t.replace(microsecond=(t.microsecond // 1000) * 1000)

    def _time(self, value: Any) -> Any:
        if isinstance(value, str) and _OFFSET.match(value):
            return Offset.parse(value).after(self.start)
        if isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        return value

    def datum(self, step: Step) -> dict[str, Any]:
        fam = family(step.family)
        at = self.at(step)
        zaak = self.zaak_refs[step.zaak]
        data: dict[str, Any] = {}
        for k, v in step.data.items():
            avro = fam.field(k).avro_type
            is_time = "timestamp-millis" in str(avro)
            data[k] = self._time(v) if is_time else v
        if "persoon_refs" in fam.field_names:
            refs = data.get("persoon_refs")
            if refs is None:
                refs = [{"persoon": f"{step.zaak}-slachtoffer", "rol": "slachtoffer"}]
                refs.append({"persoon": f"{step.zaak}-pleger", "rol": "pleger", "minderjarig": False})
            data["persoon_refs"] = [self._persoon(r) for r in refs]
        for k, v in self._defaults(step, at, data).items():
            data.setdefault(k, v)
        model = model_for(step.family).model_validate(
            {**data, "stap": step.stap, "zaak_ref": zaak, "tijdstip": at}
        )
        datum = to_avro(model)
        if step.family == "Huisverbod" and datum.get("ingangsdatum") and datum.get("einddatum"):
            self.huisverbod.setdefault(step.zaak, (datum["ingangsdatum"], datum["einddatum"]))
        return datum

    def _persoon(self, ref: Any) -> Any:
        if isinstance(ref, dict) and "persoon" in ref:
            ref = dict(ref)
            ref["persoon_ref"] = self.person(str(ref.pop("persoon")))
            ref.setdefault("rol", "overig")
        return ref

    def _defaults(self, step: Step, at: dt.datetime, data: Mapping[str, Any]) -> dict[str, Any]:
        f, s = step.family, step.stap
        symbol = partner_symbol(step.partner)
        if f == "Melding":
            return {"woonadres": "Synthetische straat 1, Utrecht"} if s == "ontvangen" else {}
        if f == "Huisverbod":
            begin, _end = self.huisverbod.get(step.zaak, (at, at + dt.timedelta(days=10)))
            begin = data.get("ingangsdatum", begin if s != "opgelegd" else at)
            out: dict[str, Any] = {"ingangsdatum": begin, "pleger_meerderjarig": True}
            if s == "opgelegd":
                out["einddatum"] = begin + dt.timedelta(days=10)
            elif s == "verlengd":
                out["einddatum"] = begin + dt.timedelta(days=28)
            elif step.zaak in self.huisverbod:
                out["einddatum"] = self.huisverbod[step.zaak][1]
            if s == "contactadres_opgegeven":
                out["contactadres"] = "Synthetisch logeeradres 9, Zeist"
            return out
        if f == "SlachtofferdeviceAlert":
            out = {"alarm_id": f"A-{step.zaak}-1"}
            if s == "alarm":
                out |= {"soort": "noodknop", "locatie": {"lat": 52.09, "lon": 5.12, "nauwkeurigheid_m": 10}}
            elif s in ("bevestigd", "opgevolgd"):
                out["bevestigd_door"] = symbol
            return out
        if f == "Zsm":
            if s == "advies":
                return {"advies_van": symbol, "advies": "toezicht_reclassering"}
            if s == "beslissing":
                return {"beslissing": "voorwaardelijk_sepot"}
            return {}
        if f == "Actieoverleg":
            return {"deelnemers": ["politie", "veilig_thuis", "om"]}
        return {}
