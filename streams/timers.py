"""Escalation timers and risk patterns, as pure bookkeeping over plain data.

`TimerBook` keeps the pending deadlines of each case in a mapping (a Faust changelog-backed
table in production, a dict in tests) and a due-ordered heap per partition in memory. Events
start and satisfy timers; `due(partition, now)` pops what has passed, in due order, as
`Escalatie` datums. `RadarBook` counts meldingen per person. Nothing here reads a clock: `now`
is always passed in (wall clock live, the virtual clock in replay).

Escalation ids derive from (case, timer, kind, deadline, key): a timer that fires again after a
crash produces the same id, so receivers drop the duplicate.
"""

from __future__ import annotations

import datetime as dt
import heapq
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from schemas.registry import partner_symbol
from streams.deadlines import (
    RadarPattern,
    RodeVlagPattern,
    Termijnen,
    TimerDef,
    canonical_type,
    due_at,
    matches,
    reminder_points,
    within_window,
)

ID_NAMESPACE = uuid.UUID("0b6d1c3e-2f7a-4e58-8d1b-3c9e5a7f1d20")
EXPIRED = "termijn_verlopen"
REMINDER = "herinnering"


def to_ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def escalation_id(*parts: object) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(map(str, parts))))


@dataclass(frozen=True)
class Escalation:
    """An Escalatie to publish: the datum and the envelope facts it needs."""

    id: str
    zaak: str
    datum: dict[str, Any]
    due_ms: int
    slot: str | None = None  # the pending deadline it fires, removed on confirm
    signalen: tuple[str, ...] = ()  # the red flags it reports, recorded on confirm

    @property
    def stap(self) -> str:
        return str(self.datum["stap"])

    @property
    def timer(self) -> str:
        return str(self.datum["timer"])


def _carry(record: Mapping[str, Any]) -> dict[str, Any]:
    """What an escalation takes over from the event that started it."""
    return {
        "persoon_refs": [
            {
                "persoon_ref": p["persoon_ref"],
                "rol": p.get("rol", "overig"),
                "minderjarig": p.get("minderjarig"),
            }
            for p in (record.get("persoon_refs") or ())
        ],
        "schadelijke_praktijk": bool(record.get("schadelijke_praktijk", False)),
        "risicotaxatie_vastgelegd": bool(record.get("risicotaxatie_vastgelegd", False)),
    }


def _escalatie(
    *,
    id_: str,
    stap: str,
    zaak: str,
    at_ms: int,
    timer: str,
    deadline_ms: int | None,
    started_by: str | None,
    notify: Iterable[str],
    voorstel: str,
    carry: Mapping[str, Any],
    signalen: Iterable[str] = (),
    reden: str,
) -> dict[str, Any]:
    return {
        "stap": stap,
        "zaak_ref": zaak,
        # The moment the deadline passed, not when a worker noticed: deterministic on replay.
        "tijdstip": from_ms(at_ms),
        "persoon_refs": list(carry.get("persoon_refs", [])),
        "escalatie_id": id_,
        "timer": timer,
        "deadline": from_ms(deadline_ms) if deadline_ms is not None else None,
        "aanleiding_event_id": started_by,
        "ontvangers": [partner_symbol(p) for p in notify],
        "voorstel": voorstel,
        "signalen": sorted(signalen),
        "schadelijke_praktijk": bool(carry.get("schadelijke_praktijk", False)),
        "risicotaxatie_vastgelegd": bool(carry.get("risicotaxatie_vastgelegd", False)),
        "reden": reden,
    }


def _pattern_escalation(
    pattern: RodeVlagPattern | RadarPattern,
    stap: str,
    id_: str,
    zaak: str,
    at_ms: int,
    event_id: str,
    carry: Mapping[str, Any],
    reden: str,
    signalen: Iterable[str] = (),
) -> Escalation:
    """A risk pattern seen: no deadline, a proposal (an Actieoverleg) to the pattern's partners."""
    signalen = tuple(signalen)
    datum = _escalatie(
        id_=id_,
        stap=stap,
        zaak=zaak,
        at_ms=at_ms,
        timer=pattern.name,
        deadline_ms=None,
        started_by=event_id,
        notify=pattern.notify,
        voorstel=pattern.voorstel,
        carry=carry,
        signalen=signalen,
        reden=reden,
    )
    return Escalation(id_, zaak, datum, at_ms, signalen=signalen)


def _copy(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A case entry to change and write back whole (a table only sees assignments)."""
    return {
        "partition": entry["partition"],
        "pending": dict(entry["pending"]),
        "signalen": list(entry["signalen"]),
        "satisfied": dict(entry.get("satisfied", {})),
    }


class TimerBook:
    """Pending deadlines per case. `store` maps zaak_ref to a JSON-able case entry:
    `{"partition": int, "pending": {slot: {...}}, "signalen": [already escalated],
    "satisfied": {"timer|key": ms of the latest satisfying event}}`."""

    def __init__(self, termijnen: Termijnen, store: MutableMapping[str, Any] | None = None) -> None:
        self.termijnen = termijnen
        self.calendar = termijnen.working_day_calendar()
        self.store: MutableMapping[str, Any] = store if store is not None else {}
        self._heaps: dict[int, list[tuple[int, str, str]]] = {}
        self.pending_per_timer: Counter[str] = Counter()
        self.red_flags = [p for p in termijnen.patterns if isinstance(p, RodeVlagPattern)]
        self._timers = {t.name: t for t in termijnen.timers}
        self._starts: dict[str, list[TimerDef]] = {}
        self._satisfies: dict[str, list[tuple[TimerDef, Any]]] = {}
        for t in termijnen.timers:
            for kind in t.starts_on:
                self._starts.setdefault(kind, []).append(t)
            for ref in t.satisfied_by:
                self._satisfies.setdefault(ref.type, []).append((t, ref.when))
        self.rebuild()

    # -- state -----------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Re-derive the heaps and counts from the store (after recovery or a rebalance)."""
        self._heaps.clear()
        self.pending_per_timer.clear()
        for zaak, entry in list(self.store.items()):
            if not entry:
                continue
            for slot, p in entry["pending"].items():
                self._push(entry["partition"], p["due_ms"], zaak, slot)
                self.pending_per_timer[p["timer"]] += 1

    def _push(self, partition: int, due_ms: int, zaak: str, slot: str) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (due_ms, zaak, slot))

    def pending(self, zaak: str) -> dict[str, Any]:
        entry = self.store.get(zaak)
        return dict(entry["pending"]) if entry else {}

    @property
    def pending_total(self) -> int:
        return sum(self.pending_per_timer.values())

    def partitions(self) -> Iterator[int]:
        return iter(sorted(self._heaps))

    # -- events ----------------------------------------------------------------------------

    def on_event(
        self, ce_type: str, record: Mapping[str, Any], event_id: str, partition: int
    ) -> list[Escalation]:
        """Satisfy and start timers for one canonical event; returns immediate escalations
        (red flags). Writes the case entry back to the store only when it changed."""
        zaak = str(record["zaak_ref"])
        stored = self.store.get(zaak)
        entry: dict[str, Any] = (
            _copy(stored)
            if stored
            else {"partition": partition, "pending": {}, "signalen": [], "satisfied": {}}
        )
        changed = False
        kind = canonical_type(ce_type)
        for timer, when in self._satisfies.get(kind, ()):
            if not matches(when, record):
                continue
            key = list(timer.key(record))
            for slot, p in list(entry["pending"].items()):
                if p["timer"] == timer.name and p["key"] == key:
                    del entry["pending"][slot]
                    self.pending_per_timer[timer.name] -= 1
            # Partners write to different inboxes, so the satisfying event can arrive before
            # the start: remember it, and a start that did not happen later does not start.
            mark = "|".join([timer.name, *key])
            at_ms = to_ms(record["tijdstip"])
            if entry["satisfied"].get(mark, -1) < at_ms:
                entry["satisfied"][mark] = at_ms
            changed = True
        for timer in self._starts.get(kind, ()):
            if not matches(timer.when, record):
                continue
            changed |= self._start(entry, zaak, timer, record, event_id, partition)
        fired = self._red_flags(entry, zaak, ce_type, record, event_id)
        if changed or (fired and zaak not in self.store):
            # with red flags in flight, keep even an empty entry: confirm() records them on it
            self._save(zaak, entry, keep=bool(fired))
        return fired

    def _start(
        self,
        entry: dict[str, Any],
        zaak: str,
        timer: TimerDef,
        record: Mapping[str, Any],
        event_id: str,
        partition: int,
    ) -> bool:
        key = list(timer.key(record))
        if any(p["timer"] == timer.name and p["key"] == key for p in entry["pending"].values()):
            return False  # the first start counts
        start = record["tijdstip"]
        if entry["satisfied"].get("|".join([timer.name, *key]), -1) >= to_ms(start):
            return False  # already satisfied by an event that arrived first
        deadline_ms = to_ms(due_at(start, timer.duration, self.calendar))
        points = [(REMINDER, to_ms(t)) for t in reminder_points(start, timer, self.calendar)]
        for kind, due_ms in [*points, (EXPIRED, deadline_ms)]:
            slot = escalation_id(zaak, timer.name, kind, due_ms, *key)
            entry["pending"][slot] = {
                "timer": timer.name,
                "kind": kind,
                "key": key,
                "due_ms": due_ms,
                "deadline_ms": deadline_ms,
                "started_by": event_id,
                "carry": _carry(record),
            }
            self._push(partition, due_ms, zaak, slot)
            self.pending_per_timer[timer.name] += 1
        return True

    def _red_flags(
        self, entry: dict[str, Any], zaak: str, ce_type: str, record: Mapping[str, Any], event_id: str
    ) -> list[Escalation]:
        fired = []
        for pattern in self.red_flags:
            if not pattern.observes(ce_type, record):
                continue
            new = sorted(set(record.get("signalen") or ()) - set(entry["signalen"]))
            if not new:
                continue  # each signal escalates once per case (recorded on confirm)
            esc = _pattern_escalation(
                pattern,
                "risicosignaal",
                escalation_id(zaak, pattern.name, *new),
                zaak,
                to_ms(record["tijdstip"]),
                event_id,
                _carry(record),
                f"patroon:{pattern.name}",
                signalen=new,
            )
            fired.append(esc)
        return fired

    def _save(self, zaak: str, entry: dict[str, Any], keep: bool = False) -> None:
        if entry["pending"] or entry["signalen"] or entry["satisfied"] or keep:
            self.store[zaak] = entry
        elif zaak in self.store:
            del self.store[zaak]

    # -- time ------------------------------------------------------------------------------

    def next_due(self, partition: int) -> int | None:
        heap = self._heaps.get(partition)
        return heap[0][0] if heap else None

    def due(self, partition: int, now_ms: int) -> list[Escalation]:
        """Pop every deadline of `partition` that passed by `now_ms`, in due order.

        The store still holds them until `confirm`: publish first, then confirm, so a crash in
        between fires them again (with the same ids) instead of losing them.
        """
        heap = self._heaps.get(partition, [])
        fired: list[Escalation] = []
        emitted: set[str] = set()
        while heap and heap[0][0] <= now_ms:
            due_ms, zaak, slot = heapq.heappop(heap)
            entry = self.store.get(zaak)
            p = entry["pending"].get(slot) if entry else None
            if p is None or slot in emitted:
                continue  # satisfied since it was pushed, or pushed twice (restarted same day)
            emitted.add(slot)
            timer = self._timers[p["timer"]]
            datum = _escalatie(
                id_=slot,
                stap=p["kind"],
                zaak=zaak,
                at_ms=due_ms,
                timer=timer.name,
                deadline_ms=p["deadline_ms"],
                started_by=p["started_by"],
                notify=timer.notify,
                voorstel="opvolgen",
                carry=p["carry"],
                reden=f"{'herinnering' if p['kind'] == REMINDER else 'termijn'}:{timer.name}",
            )
            fired.append(Escalation(slot, zaak, datum, due_ms, slot=slot))
        return fired

    def confirm(self, fired: Iterable[Escalation]) -> None:
        """Record that `fired` was published: drop the deadlines, remember the red flags."""
        touched: dict[str, dict[str, Any]] = {}
        for esc in fired:
            entry = touched.get(esc.zaak)
            if entry is None:
                stored = self.store.get(esc.zaak)
                if not stored:
                    continue
                entry = touched[esc.zaak] = _copy(stored)
            if esc.slot is not None and esc.slot in entry["pending"]:
                self.pending_per_timer[entry["pending"].pop(esc.slot)["timer"]] -= 1
            if esc.signalen:
                entry["signalen"] = sorted({*entry["signalen"], *esc.signalen})
        for zaak, entry in touched.items():
            self._save(zaak, entry)


class RadarBook:
    """The radar function: `count` meldingen about one person within `window` form a pattern.

    `store` maps persoon_ref to `{"seen": [[ms, zaak, event_id], ...], "escalated_ms": ms|None}`.
    """

    def __init__(self, termijnen: Termijnen, store: MutableMapping[str, Any] | None = None) -> None:
        self.patterns = [p for p in termijnen.patterns if isinstance(p, RadarPattern)]
        self.calendar = termijnen.working_day_calendar()
        self.store: MutableMapping[str, Any] = store if store is not None else {}

    def _window_with(
        self, seen: list[list[Any]], at_ms: int, pattern: RadarPattern
    ) -> list[list[Any]] | None:
        """`count` meldingen, the one at `at_ms` among them, all within one window (half-open,
        as `within_window`); arrival order does not matter, only when they happened."""
        times = [s[0] for s in seen]
        here = times.index(at_ms)
        for start in range(max(0, here - pattern.count + 1), here + 1):
            group = seen[start : start + pattern.count]
            if len(group) == pattern.count and within_window(
                from_ms(group[0][0]), from_ms(group[-1][0]), pattern.window, self.calendar
            ):
                return group
        return None

    def observations(self, ce_type: str, record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(pattern, persoon_ref, rol) this event counts for (used to repartition by person)."""
        return [
            (p.name, ref, rol)
            for p in self.patterns
            if p.observes(ce_type, record)
            for ref, rol in p.persons_with_role(record)
        ]

    def observe(
        self, pattern_name: str, persoon_ref: str, zaak: str, at: dt.datetime, event_id: str, rol: str
    ) -> tuple[Escalation | None, str, dict[str, Any]]:
        """Count one melding; returns (escalation or None, store key, new state). The caller
        publishes the escalation, then writes the state: a crash in between counts again."""
        pattern = next(p for p in self.patterns if p.name == pattern_name)
        key = f"{pattern.name}|{persoon_ref}"
        state = self.store.get(key) or {"seen": [], "escalated_ms": None}
        at_ms = to_ms(at)
        seen = sorted([s for s in state["seen"] if s[2] != event_id] + [[at_ms, zaak, event_id]])
        window = self._window_with(seen, at_ms, pattern)
        escalated = state["escalated_ms"]
        fire = window is not None and (
            escalated is None
            or not within_window(
                from_ms(min(escalated, window[0][0])),
                from_ms(max(escalated, window[0][0])),
                pattern.window,
                self.calendar,
            )
        )
        # Meldingen more than a window before the newest can no longer share a window with it.
        newest = from_ms(seen[-1][0])
        kept = [s for s in seen if due_at(from_ms(s[0]), pattern.window, self.calendar) > newest]
        new_state = {"seen": kept, "escalated_ms": window[0][0] if fire and window else escalated}
        if not fire or window is None:
            return None, key, new_state
        esc = _pattern_escalation(
            pattern,
            "patroon",
            escalation_id(persoon_ref, pattern.name, *sorted(s[2] for s in window)),
            zaak,
            at_ms,
            event_id,
            {"persoon_refs": [{"persoon_ref": persoon_ref, "rol": rol, "minderjarig": None}]},
            f"patroon:{pattern.name}:{len(window)}",
        )
        return esc, key, new_state
