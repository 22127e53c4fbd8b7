"""Deadline rules and deadline arithmetic: the model of `policy/termijnen.yaml` and `due_at`.

Pure functions over plain data: no Kafka and no clock. The timer engine passes in the start
time and asks when a deadline or reminder falls, which timers an event starts or satisfies,
and whether a condition holds for a record.

Working-day rule. "N working days after an event at time T" ends at 23:59:59.999 Dutch
local time (Europe/Amsterdam) on the Nth working day after the local date of T. The date
of T itself never counts, even when T is early on a working day. That is how "uiterlijk
binnen vijf werkdagen na ontvangst" is read: the receiving organisation has the whole last
day. Avro timestamps have millisecond precision, so the deadline is the last millisecond of
that day. It is returned as an aware UTC datetime. Working days are Monday to Friday
except Dutch public holidays.

Holidays come from the `holidays` library (`country_holidays("NL")`, public category), with
two days set in the `calendar:` section of the file:
- Goede Vrijdag: `holidays` 0.109 (installed here) puts Good Friday in the NL public
  category. It is not one of the algemeen erkende feestdagen of the Algemene termijnenwet
  (art. 3), and whether it is a day off depends on the CAO. So the calendar decides it, not
  the library version: by default Good Friday is a working day (`goede_vrijdag: vrij` makes
  it a holiday). This default also gives the earlier, stricter deadline.
- Bevrijdingsdag: the library's public category has 5 May only in lustrum years (year
  divisible by 5: 2020, 2025, 2030), as many CAOs do. Its optional category has it every
  year. The default follows the public category; `bevrijdingsdag: jaarlijks` adds the
  optional one.
King's Day follows the library: 27 April, or Saturday 26 April when the 27th is a Sunday
(2025), so in such a year it costs no working day.
"""

from __future__ import annotations

import difflib
import functools
from calendar import monthrange
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import holidays
import yaml
from dateutil.easter import easter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.registry import PARTNERS, Family, family, resolve_type
from streams import conditions
from streams.conditions import Condition, core_type

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
END_OF_DAY = time(23, 59, 59, 999_000)  # last millisecond: Avro timestamps are timestamp-millis

ELAPSED_UNITS = ("seconds", "minutes", "hours")
UNITS = (*ELAPSED_UNITS, "days", "weeks", "months", "working_days")
# Units in one group can be compared (a reminder must fall before its timer's expiry).
_COMPARABLE = {
    "seconds": ("elapsed", 1),
    "minutes": ("elapsed", 60),
    "hours": ("elapsed", 3600),
    "days": ("calendar-days", 1),
    "weeks": ("calendar-days", 7),
    "months": ("months", 1),
    "working_days": ("working-days", 1),
}

Name = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ── Calendar ────────────────────────────────────────────────────────────────────────────


@cache
def _holidays(year: int, goede_vrijdag_vrij: bool, bevrijdingsdag_jaarlijks: bool) -> Mapping[date, str]:
    days: dict[date, str] = dict(holidays.country_holidays("NL", years=year))
    good_friday = easter(year) - timedelta(days=2)
    if goede_vrijdag_vrij:
        days.setdefault(good_friday, "Goede Vrijdag")
    else:
        days.pop(good_friday, None)
    if bevrijdingsdag_jaarlijks:
        optional = holidays.country_holidays("NL", years=year, categories=(holidays.OPTIONAL,))
        days.update({d: name for d, name in optional.items() if (d.month, d.day) == (5, 5)})
    return MappingProxyType(days)


@dataclass(frozen=True)
class WorkingDayCalendar:
    """Dutch working days: Monday to Friday except public holidays (see the module docstring)."""

    goede_vrijdag_vrij: bool = False
    bevrijdingsdag_jaarlijks: bool = False

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> WorkingDayCalendar:
        return cls(
            goede_vrijdag_vrij=settings.goede_vrijdag == "vrij",
            bevrijdingsdag_jaarlijks=settings.bevrijdingsdag == "jaarlijks",
        )

    def holidays_in(self, year: int) -> Mapping[date, str]:
        """The public holidays of `year` by date, with their (Dutch) names."""
        return _holidays(year, self.goede_vrijdag_vrij, self.bevrijdingsdag_jaarlijks)

    def holiday_name(self, day: date) -> str | None:
        return self.holidays_in(day.year).get(day)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays_in(day.year)

    def add_working_days(self, day: date, n: int) -> date:
        """The nth working day after `day` (n >= 1); `day` itself never counts."""
        if n < 1:
            raise ValueError(f"working days must be at least 1, got {n}")
        current = day
        while n:
            current += timedelta(days=1)
            n -= self.is_working_day(current)
        return current


def local_date(moment: datetime) -> date:
    """The Dutch calendar date of an aware moment."""
    return _require_aware(moment).astimezone(AMSTERDAM).date()


def end_of_day(day: date) -> datetime:
    """The last millisecond of a Dutch calendar day, as an aware UTC datetime."""
    return datetime.combine(day, END_OF_DAY, tzinfo=AMSTERDAM).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    """Calendar-month addition; a day the target month lacks becomes its last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, monthrange(year, month)[1]))


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a deadline needs a timezone-aware start, got naive {moment.isoformat()}")
    return moment


def _wall_clock_shift(start: datetime, *, days: int = 0, months: int = 0) -> datetime:
    # Same Dutch clock time on the target day. A clock time that does not exist or occurs
    # twice that day (summer time changes) resolves with fold=0: the earlier UTC offset.
    local = start.astimezone(AMSTERDAM)
    target = add_months(local.date(), months) + timedelta(days=days)
    return datetime.combine(target, local.time(), tzinfo=AMSTERDAM).astimezone(UTC)


# ── Durations ───────────────────────────────────────────────────────────────────────────


class Duration(_Strict):
    """A length of time in exactly one unit, e.g. `{working_days: 5}` or `{hours: 1}`."""

    seconds: PositiveInt | None = None
    minutes: PositiveInt | None = None
    hours: PositiveInt | None = None
    days: PositiveInt | None = None
    weeks: PositiveInt | None = None
    months: PositiveInt | None = None
    working_days: PositiveInt | None = None

    @model_validator(mode="after")
    def _exactly_one_unit(self) -> Duration:
        units = [u for u in UNITS if getattr(self, u) is not None]
        if len(units) != 1:
            given = ", ".join(units) or "none"
            raise ValueError(f"a duration has exactly one unit (one of {', '.join(UNITS)}); got {given}")
        return self

    @property
    def unit(self) -> str:
        return next(u for u in UNITS if getattr(self, u) is not None)

    @property
    def amount(self) -> int:
        value: int = getattr(self, self.unit)
        return value

    def __str__(self) -> str:
        unit = self.unit.replace("_", " ")
        return f"{self.amount} {unit.removesuffix('s') if self.amount == 1 else unit}"


def due_at(start: datetime, duration: Duration, calendar: WorkingDayCalendar) -> datetime:
    """When `duration` after `start` has passed, as an aware UTC datetime.

    Elapsed units add real time; days, weeks and months keep the Dutch clock time; working
    days end at the last millisecond of the Nth working day after the start's date.
    """
    _require_aware(start)
    unit, n = duration.unit, duration.amount
    if unit in ELAPSED_UNITS:
        return (start + timedelta(**{unit: n})).astimezone(UTC)
    if unit == "working_days":
        return end_of_day(calendar.add_working_days(local_date(start), n))
    if unit == "months":
        return _wall_clock_shift(start, months=n)
    return _wall_clock_shift(start, days=n * 7 if unit == "weeks" else n)


def reminder_points(start: datetime, timer: TimerDef, calendar: WorkingDayCalendar) -> tuple[datetime, ...]:
    """The reminder moments of `timer` started at `start`, in order, all before its expiry."""
    expiry = due_at(start, timer.duration, calendar)
    points = sorted(due_at(start, r, calendar) for r in timer.reminders)
    return tuple(p for p in points if p < expiry)


def within_window(first: datetime, last: datetime, window: Duration, calendar: WorkingDayCalendar) -> bool:
    """Whether `last` falls within `window` of `first` (the radar's test)."""
    return first <= last < due_at(first, window, calendar)


def _reminder_problem(reminder: Duration, duration: Duration) -> str | None:
    (group, scale), (limit_group, limit_scale) = _COMPARABLE[reminder.unit], _COMPARABLE[duration.unit]
    if group != limit_group:
        return f"reminder {reminder} cannot be compared with duration {duration}; use the same kind of unit"
    if reminder.amount * scale >= duration.amount * limit_scale:
        return f"reminder {reminder} is not before the expiry ({duration})"
    return None


# ── Conditions ──────────────────────────────────────────────────────────────────────────
# The condition language (shared with verstrekkingen.yaml) lives in streams.conditions.


def matches(condition: Condition | None, record: Mapping[str, Any]) -> bool:
    """Whether `record` (a decoded event) meets `condition`; no condition always holds."""
    return condition is None or condition.evaluate(record)


# ── Checks against the schemas ──────────────────────────────────────────────────────────


@functools.cache
def canonical_type(event_type: str) -> str:
    """`nl.ketenbus.melding.ontvangen` or `Melding.ontvangen` to `Melding.ontvangen`."""
    fam, step = resolve_type(event_type)
    return f"{fam.name}.{step}"


def _known_types() -> list[str]:
    from schemas.registry import families

    return [f"{fam.name}.{step}" for fam in families().values() for step in fam.steps]


def _checked_type(event_type: str) -> str:
    try:
        return canonical_type(event_type)
    except KeyError:
        close = difflib.get_close_matches(event_type, _known_types(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown event type {event_type!r}{hint}") from None


def _family_of(event_type: str) -> Family:
    return family(event_type.partition(".")[0])


def _condition_problems(condition: Condition | None, event_types: Iterable[str], where: str) -> list[str]:
    problems: list[str] = []
    for event_type in event_types:
        found = conditions.problems(condition, _family_of(event_type), subject=event_type)
        problems += [f"{where}: {p}" for p in found]
    return problems


def _notify_problems(notify: Sequence[str]) -> list[str]:
    if not notify:
        return ["notify is empty: name at least one partner to tell"]
    unknown = [p for p in notify if p not in PARTNERS]
    problems = [f"notify: unknown partner {p!r} (one of {', '.join(PARTNERS)})" for p in unknown]
    if len(set(notify)) != len(notify):
        problems.append("notify: a partner is listed twice")
    return problems


def _raise(problems: list[str]) -> None:
    # One condition checked against several event types repeats the same problem.
    if problems:
        raise ValueError("; ".join(dict.fromkeys(problems)))


# ── The termijnen file ──────────────────────────────────────────────────────────────────


class EventRef(_Strict):
    """An event type, optionally only when its record meets `when`."""

    type: str
    when: Condition | None = None

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        return _checked_type(value)


class TimerDef(_Strict):
    """One deadline: what starts it, what satisfies it, how long it runs and whom to tell."""

    name: Name
    group: Name | None = None
    description: str = ""
    starts_on: list[str] = Field(min_length=1)
    when: Condition | None = None
    satisfied_by: list[EventRef] = Field(min_length=1)
    match: list[str] = Field(default_factory=list)
    duration: Duration
    reminders: list[Duration] = Field(default_factory=list)
    notify: list[str]
    source: str = Field(min_length=1)
    assumption: bool = False
    note: str = ""

    @field_validator("starts_on")
    @classmethod
    def _known_types(cls, values: list[str]) -> list[str]:
        return [_checked_type(v) for v in values]

    @field_validator("satisfied_by", mode="before")
    @classmethod
    def _plain_types(cls, values: Any) -> Any:
        if isinstance(values, list):
            return [{"type": v} if isinstance(v, str) else v for v in values]
        return values

    @model_validator(mode="after")
    def _consistent(self) -> TimerDef:
        problems = _notify_problems(self.notify)
        problems += _condition_problems(self.when, self.starts_on, "when")
        for ref in self.satisfied_by:
            problems += _condition_problems(ref.when, [ref.type], f"satisfied_by {ref.type} when")
        for event_type in (*self.starts_on, *(ref.type for ref in self.satisfied_by)):
            missing = [f for f in self.match if f not in _family_of(event_type).field_names]
            problems += [f"match: {event_type} has no field {f!r}" for f in missing]
        problems += [p for r in self.reminders if (p := _reminder_problem(r, self.duration))]
        if self.assumption and not self.note.strip():
            problems.append("assumption: true needs a note saying what the sources do say")
        _raise(problems)
        return self

    def starts(self, event_type: str, record: Mapping[str, Any]) -> bool:
        """Whether an event of `event_type` (either form) with `record` starts this timer."""
        try:
            return canonical_type(event_type) in self.starts_on and matches(self.when, record)
        except KeyError:
            return False

    def is_satisfied_by(self, event_type: str, record: Mapping[str, Any]) -> bool:
        """Whether the event satisfies this timer (the caller checks `key` equality)."""
        try:
            kind = canonical_type(event_type)
        except KeyError:
            return False
        return any(ref.type == kind and matches(ref.when, record) for ref in self.satisfied_by)

    def key(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """What a start and a satisfying event must share: the case and the `match` fields."""
        return (str(record["zaak_ref"]), *(str(record.get(f)) for f in self.match))


class _PatternBase(_Strict):
    name: Name
    description: str = ""
    events: list[str] = Field(min_length=1)
    when: Condition | None = None
    voorstel: Literal["actieoverleg", "opvolgen"] = "actieoverleg"
    notify: list[str]
    source: str = Field(min_length=1)
    assumption: bool = False
    note: str = ""

    @field_validator("events")
    @classmethod
    def _known_types(cls, values: list[str]) -> list[str]:
        return [_checked_type(v) for v in values]

    def _base_problems(self) -> list[str]:
        problems = _notify_problems(self.notify)
        problems += _condition_problems(self.when, self.events, "when")
        if self.assumption and not self.note.strip():
            problems.append("assumption: true needs a note saying what the sources do say")
        return problems

    def observes(self, event_type: str, record: Mapping[str, Any]) -> bool:
        """Whether the event counts for this pattern."""
        try:
            return canonical_type(event_type) in self.events and matches(self.when, record)
        except KeyError:
            return False


class RodeVlagPattern(_PatternBase):
    """One event with a red-flag signal raises an Escalatie risicosignaal."""

    kind: Literal["rode_vlag"]
    when: Condition

    @model_validator(mode="after")
    def _consistent(self) -> RodeVlagPattern:
        _raise(self._base_problems())
        return self


class RadarPattern(_PatternBase):
    """`count` events about one person within `window` raise an Escalatie patroon."""

    kind: Literal["radar"]
    per: Literal["persoon_ref"] = "persoon_ref"
    rollen: list[str] = Field(min_length=1)
    count: int = Field(ge=2)
    window: Duration

    @model_validator(mode="after")
    def _consistent(self) -> RadarPattern:
        problems = self._base_problems()
        for event_type in self.events:
            fam = _family_of(event_type)
            if "persoon_refs" not in fam.field_names:
                problems.append(f"events: {event_type} has no persoon_refs to count per person")
                continue
            symbols = _rol_symbols(fam)
            problems += [
                f"rollen: unknown role {r!r} (one of {', '.join(symbols)})"
                for r in self.rollen
                if r not in symbols
            ]
        _raise(problems)
        return self

    def persons(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """The pseudonymous persons in `record` this pattern counts for."""
        return tuple(sorted(dict(self.persons_with_role(record))))

    def persons_with_role(self, record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        """(persoon_ref, rol) for each person counted, in the first role that counts."""
        found: dict[str, str] = {}
        for r in record.get("persoon_refs") or ():
            if r.get("rol") in self.rollen:
                found.setdefault(r["persoon_ref"], r["rol"])
        return tuple(sorted(found.items()))


def _rol_symbols(fam: Family) -> tuple[str, ...]:
    person = core_type(fam.field("persoon_refs").avro_type)
    rol = next(f for f in person["fields"] if f["name"] == "rol")
    return tuple(rol["type"]["symbols"])


PatternDef = Annotated[RodeVlagPattern | RadarPattern, Field(discriminator="kind")]


class CalendarSettings(_Strict):
    """The two CAO-dependent days; see the module docstring."""

    goede_vrijdag: Literal["werkdag", "vrij"] = "werkdag"
    bevrijdingsdag: Literal["lustrum", "jaarlijks"] = "lustrum"


class Termijnen(_Strict):
    """The whole of `policy/termijnen.yaml`."""

    version: Literal[1]
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    timers: list[TimerDef] = Field(min_length=1)
    patterns: list[PatternDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Termijnen:
        names = [t.name for t in self.timers] + [p.name for p in self.patterns]
        twice = sorted({n for n in names if names.count(n) > 1})
        _raise([f"name {n!r} is used more than once" for n in twice])
        return self

    def timer(self, name: str) -> TimerDef:
        for t in self.timers:
            if t.name == name:
                return t
        raise KeyError(f"no timer {name!r}")

    def pattern(self, name: str) -> RodeVlagPattern | RadarPattern:
        for p in self.patterns:
            if p.name == name:
                return p
        raise KeyError(f"no pattern {name!r}")

    def working_day_calendar(self) -> WorkingDayCalendar:
        return WorkingDayCalendar.from_settings(self.calendar)

    def timers_started_by(self, event_type: str, record: Mapping[str, Any]) -> list[TimerDef]:
        return [t for t in self.timers if t.starts(event_type, record)]

    def timers_satisfied_by(self, event_type: str, record: Mapping[str, Any]) -> list[TimerDef]:
        return [t for t in self.timers if t.is_satisfied_by(event_type, record)]


# ── Loading ─────────────────────────────────────────────────────────────────────────────


class TermijnenError(ValueError):
    """The termijnen file is invalid; `problems` lists each problem, naming its timer."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: invalid termijnen:\n  - " + "\n  - ".join(problems))


def load_termijnen(path: str | Path) -> Termijnen:
    """Read and validate a termijnen file; raises `TermijnenError` naming every problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TermijnenError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_termijnen(raw, source=str(path))


def parse_termijnen(raw: Any, source: str = "<termijnen>") -> Termijnen:
    """Validate already-parsed YAML (a mapping with `version`, `timers` and `patterns`)."""
    if not isinstance(raw, dict):
        raise TermijnenError(
            source, ["the file must be a mapping with version, calendar, timers and patterns"]
        )
    try:
        return Termijnen.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error["loc"], error["msg"], raw) for error in exc.errors()]
        raise TermijnenError(source, problems) from None


_UNION_TAGS = frozenset({"rode_vlag", "radar"})


def _describe(loc: tuple[int | str, ...], msg: str, raw: Mapping[str, Any]) -> str:
    """One pydantic error as `timer 'vt-acuut': duration: ...`."""
    msg = msg.removeprefix("Value error, ")
    owner, rest = "", loc
    if len(loc) >= 2 and loc[0] in ("timers", "patterns") and isinstance(loc[1], int):
        section, index = str(loc[0]), loc[1]
        items = raw.get(section)
        item = items[index] if isinstance(items, list) and index < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        kind = "timer" if section == "timers" else "pattern"
        owner = f"{kind} {name!r}" if name else f"{section}[{index}]"
        rest = loc[2:]
    path = ".".join(str(p) for p in rest if p not in _UNION_TAGS)
    return ": ".join(part for part in (owner, path, msg) if part)
