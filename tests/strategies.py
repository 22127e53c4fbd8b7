"""Hypothesis strategies for valid Avro datums of the ketenbus families.

`datum_strategy(schema)` turns any (expanded, self-contained) Avro schema into a strategy for
datums fastavro and the reference `avro` package both accept; `event_strategy(family, step)`
does the same for one family with its lifecycle field `stap` pinned to a step. Reused by the
codec tests and by property tests elsewhere (the policy engine, the streams).

Supported: records, enums, arrays, maps, fixed, unions (any branches; in practice null + one
type), null, boolean, int, long, float, double, bytes, string, and the logical types
timestamp-millis / timestamp-micros (timezone-aware UTC datetimes, truncated to the precision
the type keeps, between 2000 and 2100) and date. Anything else raises NotImplementedError, so a
schema change that needs a new generator fails loudly instead of producing wrong datums.

Records always carry every field (no field is left to its default), so a datum compares equal
to its own decode. Strings and collections are kept short: the tests are about structure, not
volume.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from schemas.registry import family

MAX_STRING = 12
MAX_ITEMS = 3
MIN_TIME = dt.datetime(2000, 1, 1)
MAX_TIME = dt.datetime(2100, 1, 1)

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _timestamps(precision_us: int) -> SearchStrategy[dt.datetime]:
    return st.datetimes(min_value=MIN_TIME, max_value=MAX_TIME, timezones=st.just(dt.UTC)).map(
        lambda t: t.replace(microsecond=t.microsecond - t.microsecond % precision_us)
    )


def _float32() -> SearchStrategy[float]:
    return st.floats(width=32, allow_nan=False)


class _Builder:
    """Walks one schema; named types are remembered by full name at their definition, so a
    later reference by name (as `expand` leaves them) gets the same strategy."""

    def __init__(self) -> None:
        self.named: dict[str, SearchStrategy[Any]] = {}

    def build(self, node: Any, namespace: str | None) -> SearchStrategy[Any]:
        if isinstance(node, str):
            return self._by_name(node, namespace)
        if isinstance(node, list):
            return st.one_of([self.build(branch, namespace) for branch in node])
        if not isinstance(node, Mapping):
            raise NotImplementedError(f"not an Avro schema: {node!r}")
        kind = node["type"]
        if isinstance(kind, list | Mapping):  # {"type": {...}} wrapper
            return self.build(kind, namespace)
        logical = node.get("logicalType")
        if logical is not None:
            return self._logical(kind, logical)
        if kind in _PRIMITIVES:
            return self._primitive(kind)
        if kind == "array":
            return st.lists(self.build(node["items"], namespace), max_size=MAX_ITEMS)
        if kind == "map":
            return st.dictionaries(
                st.text(max_size=MAX_STRING), self.build(node["values"], namespace), max_size=MAX_ITEMS
            )
        if kind in ("record", "error", "enum", "fixed"):
            return self._named(node, namespace)
        return self._by_name(kind, namespace)

    def _named(self, node: Mapping[str, Any], namespace: str | None) -> SearchStrategy[Any]:
        ns = node.get("namespace", namespace)
        full = _full_name(node["name"], ns)
        if "." in node["name"]:
            ns = full.rpartition(".")[0]
        strategy: SearchStrategy[Any]
        if node["type"] == "enum":
            strategy = st.sampled_from(list(node["symbols"]))
        elif node["type"] == "fixed":
            strategy = st.binary(min_size=node["size"], max_size=node["size"])
        else:
            # Register before walking the fields, so a recursive reference resolves lazily.
            self.named[full] = st.deferred(lambda: self.named[full])
            names = [f["name"] for f in node["fields"]]
            strategy = st.fixed_dictionaries(
                {f["name"]: self.build(f["type"], ns) for f in node["fields"]}
            ).map(lambda d: {name: d[name] for name in names})
        self.named[full] = strategy
        return strategy

    def _by_name(self, name: str, namespace: str | None) -> SearchStrategy[Any]:
        if name in _PRIMITIVES:
            return self._primitive(name)
        for candidate in (_full_name(name, namespace), name):
            if candidate in self.named:
                return self.named[candidate]
        raise NotImplementedError(f"unknown Avro type {name!r}")

    @staticmethod
    def _primitive(kind: str) -> SearchStrategy[Any]:
        strategies: dict[str, SearchStrategy[Any]] = {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(INT_MIN, INT_MAX),
            "long": st.integers(LONG_MIN, LONG_MAX),
            "float": _float32(),
            "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=MAX_STRING),
            "string": st.text(max_size=MAX_STRING),
        }
        return strategies[kind]

    def _logical(self, kind: str, logical: str) -> SearchStrategy[Any]:
        if kind == "long" and logical == "timestamp-millis":
            return _timestamps(1000)
        if kind == "long" and logical == "timestamp-micros":
            return _timestamps(1)
        if kind == "int" and logical == "date":
            return st.dates(min_value=MIN_TIME.date(), max_value=MAX_TIME.date())
        raise NotImplementedError(f"logical type {logical!r} on {kind!r}")


def datum_strategy(schema: Mapping[str, Any]) -> SearchStrategy[dict[str, Any]]:
    """A strategy for valid datums of a (self-contained) record schema, every field present."""
    if not isinstance(schema, Mapping) or schema.get("type") not in ("record", "error"):
        raise ValueError("datum_strategy needs a record schema")
    strategy: SearchStrategy[dict[str, Any]] = _Builder().build(schema, schema.get("namespace"))
    return strategy


def event_strategy(
    family_name: str, step: str | None = None, overrides: Mapping[str, Any] | None = None
) -> SearchStrategy[dict[str, Any]]:
    """Valid records of one family.

    `step` pins the lifecycle field `stap` (any step when None). Families without a lifecycle
    (Verstrekking, DeadLetter) accept only their fixed pseudo-step, or None. `zaak_ref`, being
    the Kafka key and `ce_subject`, is never empty. `overrides` replaces the generator of
    top-level fields: a SearchStrategy is drawn from, any other value is used as is.
    """
    fam = family(family_name)
    if step is not None and step not in fam.steps:
        raise KeyError(f"{family_name} has no step {step!r}")
    fixed: dict[str, SearchStrategy[Any]] = {}
    if "stap" in fam.field_names:
        fixed["stap"] = st.sampled_from(fam.steps) if step is None else st.just(step)
    if "zaak_ref" in fam.field_names:
        fixed["zaak_ref"] = st.text(min_size=1, max_size=MAX_STRING)
    for name, value in (overrides or {}).items():
        fam.field(name)  # KeyError on a typo
        fixed[name] = value if isinstance(value, SearchStrategy) else st.just(value)
    base = datum_strategy(fam.schema)
    if not fixed:
        return base
    order = fam.field_names

    def merge(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        merged = {**pair[0], **pair[1]}
        return {name: merged[name] for name in order}

    return st.tuples(base, st.fixed_dictionaries(fixed)).map(merge)


__all__ = ["datum_strategy", "event_strategy"]
