"""Lawful data sharing: who may receive which fields of which event, and on what legal basis.

The rules live in `policy/verstrekkingen.yaml`, data a privacy officer reads and signs off.
Everything here is pure: `Policy.decide(...)` takes an event and returns, per recipient, what
may be released. Default deny: no matching rule, no delivery. Fields not listed are never sent.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.registry import PARTNERS, Family, families, resolve_type
from streams import conditions
from streams.conditions import Condition
from streams.conditions import ConditionError as ConditionError  # re-exported

Event = Mapping[str, Any]


# -- conditions ---------------------------------------------------------------------------------
# The condition language is shared with termijnen.yaml and lives in streams.conditions.

parse_condition = conditions.parse


# -- the policy file ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Model):
    id: str = Field(min_length=1)
    types: list[str] = Field(min_length=1)
    to: list[str] = Field(min_length=1)
    fields: list[str] = Field(default_factory=list)
    when: Condition | None = None
    grondslag: str = Field(min_length=3)
    doel: str = Field(min_length=3)
    art9: str | None = None
    art10: str | None = None
    source: str | None = None

    def matches_type(self, ce_type: str) -> bool:
        fam, step = resolve_type(ce_type)
        names = (ce_type, f"{fam.name}.{step}")
        return any(fnmatch.fnmatchcase(n, pattern) for pattern in self.types for n in names)


class HoudHetKlein(_Model):
    """EGG / harmful practices: keep the circle small until a risicotaxatie is recorded (seed 001)."""

    applies_when: Condition
    lifted_when: Condition
    allowed_recipients: list[str]
    source: str | None = None

    def narrows(self, event: Event, recipient: str) -> bool:
        return (
            recipient not in self.allowed_recipients
            and self.applies_when.evaluate(event)
            and not self.lifted_when.evaluate(event)
        )


class PolicyError(ValueError):
    """A policy file that must not be used; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What one recipient may receive of one event."""

    recipient: str
    outcome: str  # released | denied | narrowed (houd het klein)
    fields: frozenset[str] = frozenset()
    rules: tuple[str, ...] = ()
    grondslag: str = ""
    doel: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == "released"


class Policy(_Model):
    version: str = Field(min_length=1)
    houd_het_klein: HoudHetKlein | None = None
    rules: list[Rule]

    @cached_property
    def _by_type(self) -> dict[str, tuple[Rule, ...]]:
        table: dict[str, tuple[Rule, ...]] = {}
        for fam in families().values():
            for step in fam.steps:
                ce_type = fam.ce_type(step)
                table[ce_type] = tuple(r for r in self.rules if r.matches_type(ce_type))
        return table

    def rules_for(self, ce_type: str) -> tuple[Rule, ...]:
        return self._by_type.get(ce_type, ())

    @cached_property
    def _targets(self) -> dict[tuple[str, tuple[str, ...]], tuple[tuple[Rule, tuple[str, ...]], ...]]:
        """Per (type, candidate recipients): each rule of the type with the candidates it names."""
        return {}

    @cached_property
    def _decisions(self) -> dict[tuple[str, str, tuple[str, ...], bool], Decision]:
        """The decisions made so far: the same rules for the same recipient decide the same."""
        return {}

    def decide(
        self, fam: Family, ce_type: str, event: Event, recipients: Iterable[str] = PARTNERS
    ) -> dict[str, Decision]:
        """Per recipient, what of `event` may be released. Recipients without a rule are denied."""
        candidates = tuple(recipients)
        targets = self._targets.get((ce_type, candidates))
        if targets is None:
            targets = tuple(
                (rule, tuple(r for r in candidates if r in rule.to)) for rule in self.rules_for(ce_type)
            )
            self._targets[ce_type, candidates] = targets
        why: dict[str, list[Rule]] = {}
        for rule, names in targets:
            for recipient in names:
                if rule.when is None or rule.when.evaluate(event, recipient):
                    why.setdefault(recipient, []).append(rule)
        decisions: dict[str, Decision] = {}
        for recipient in candidates:
            rules = tuple(why.get(recipient, ()))
            narrowed = (
                bool(rules)
                and self.houd_het_klein is not None
                and self.houd_het_klein.narrows(event, recipient)
            )
            key = (fam.name, recipient, tuple(r.id for r in rules), narrowed)
            decision = self._decisions.get(key)
            if decision is None:
                decision = self._decision(fam, recipient, rules, narrowed)
                self._decisions[key] = decision
            decisions[recipient] = decision
        return decisions

    @staticmethod
    def _decision(fam: Family, recipient: str, rules: tuple[Rule, ...], narrowed: bool) -> Decision:
        if not rules:
            return Decision(recipient, "denied")
        if narrowed:
            return Decision(recipient, "narrowed", rules=tuple(r.id for r in rules))
        released: set[str] = set()
        for r in rules:
            released.update(r.fields)
        return Decision(
            recipient,
            "released",
            fields=frozenset(released) | fam.required_fields,
            rules=tuple(r.id for r in rules),
            grondslag=_join(r.grondslag for r in rules),
            doel=_join(r.doel for r in rules),
        )

    def explain(self, ce_type: str, recipient: str) -> dict[str, Any]:
        """What `recipient` could receive of `ce_type`, and why (for `ketenbus policy explain`)."""
        fam, step = resolve_type(ce_type)
        canonical = fam.ce_type(step)
        rules = [r for r in self.rules_for(canonical) if recipient in r.to]
        fields: set[str] = set()
        for r in rules:
            fields.update(r.fields)
        conditions = [f"{r.id}: {r.when.describe()}" for r in rules if r.when is not None]
        if rules and self.houd_het_klein and recipient not in self.houd_het_klein.allowed_recipients:
            conditions.append(
                f"houd het klein: niet wanneer {self.houd_het_klein.applies_when.describe()}"
                f" tenzij {self.houd_het_klein.lifted_when.describe()}"
            )
        return {
            "type": canonical,
            "recipient": recipient,
            "allowed": bool(rules),
            "fields": sorted(fields | fam.required_fields) if rules else [],
            "classification": {f: fam.field(f).classification for f in sorted(fields | fam.required_fields)}
            if rules
            else {},
            "grondslag": _join(r.grondslag for r in rules),
            "doel": _join(r.doel for r in rules),
            "rules": [r.id for r in rules],
            "conditions": conditions,
            "policy_version": self.version,
        }


def _join(parts: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(parts))


# -- loading and checking -----------------------------------------------------------------------


def check(policy: Policy) -> list[str]:
    """Every reason this policy must not be used (empty when it is fine)."""
    problems: list[str] = []
    seen: set[str] = set()
    all_types = [fam.ce_type(s) for fam in families().values() for s in fam.steps]
    for rule in policy.rules:
        where = f"rule {rule.id!r}"
        if rule.id in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(rule.id)
        for r in rule.to:
            if r not in PARTNERS:
                problems.append(f"{where}: unknown recipient {r!r}")
        matched = [t for t in all_types if rule.matches_type(t)] if _types_resolve(rule, problems) else []
        if not matched and not any(p.startswith(where) for p in problems):
            problems.append(f"{where}: types {rule.types} match no event type")
        fams = {resolve_type(t)[0].name: resolve_type(t)[0] for t in matched}
        wanted = set(rule.fields) | (rule.when.fields() if rule.when else set())
        for fam in fams.values():
            unknown = sorted(wanted - set(fam.field_names))
            if unknown:
                problems.append(f"{where}: {fam.name} has no field(s) {', '.join(unknown)}")
                continue
            problems += [f"{where}: {p}" for p in conditions.problems(rule.when, fam)]
            classes = {fam.field(f).classification for f in rule.fields}
            if "special" in classes and not (rule.art9 or "").strip():
                problems.append(
                    f"{where}: releases a special (AVG art. 9) field of {fam.name} without an art9 exception"
                )
            if "criminal" in classes and not (rule.art10 or "").strip():
                problems.append(
                    f"{where}: releases a criminal (AVG art. 10) field of {fam.name} without an art10 basis"
                )
    hhk = policy.houd_het_klein
    if hhk is not None:
        for r in hhk.allowed_recipients:
            if r not in PARTNERS:
                problems.append(f"houd_het_klein: unknown recipient {r!r}")
        problems += _houd_het_klein_problems(hhk)
    return problems


def _houd_het_klein_problems(hhk: HoudHetKlein) -> list[str]:
    # houd_het_klein is tested on every event, so a field need only exist in some family.
    # Each test is checked once, against the first family that has its field.
    problems: list[str] = []
    for name, condition in (("applies_when", hhk.applies_when), ("lifted_when", hhk.lifted_when)):
        where = f"houd_het_klein: {name}"
        unknown: list[str] = []
        for test in condition.walk():
            if test.field is None:
                continue
            fam = next((f for f in families().values() if test.field in f.field_names), None)
            if fam is None:
                unknown.append(test.field)
            else:
                problems += [f"{where}: {p}" for p in conditions.problems(test, fam)]
        if unknown:
            problems.append(f"{where}: no event family has field(s) {', '.join(sorted(set(unknown)))}")
    return problems


def _types_resolve(rule: Rule, problems: list[str]) -> bool:
    ok = True
    for pattern in rule.types:
        if any(ch in pattern for ch in "*?["):
            continue
        try:
            resolve_type(pattern)
        except KeyError:
            problems.append(f"rule {rule.id!r}: unknown event type {pattern!r}")
            ok = False
    return ok


def parse(raw: Any, origin: str = "policy") -> Policy:
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _location(raw, err["loc"])
            problems.append(f"{origin}: {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise PolicyError(problems) from None
    problems = check(policy)
    if problems:
        raise PolicyError([f"{origin}: {p}" for p in problems])
    return policy


def _location(raw: Any, loc: tuple[Any, ...]) -> str:
    # Name rules by id rather than by list index: that is what a reviewer searches for.
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            rid = raw["rules"][loc[1]].get("id", f"#{loc[1]}")
        except (KeyError, IndexError, TypeError, AttributeError):
            rid = f"#{loc[1]}"
        return ".".join([f"rule {rid!r}", *map(str, loc[2:])])
    return ".".join(map(str, loc))


def load(path: Path | str) -> Policy:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError([f"{path}: cannot read: {exc}"]) from None
    return parse(raw, str(path))
