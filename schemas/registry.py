"""The event families of the chain, loaded once from the .avsc files beside this module.

A `Family` knows its lifecycle steps, the CloudEvents type of each step, which partner may
produce each step, how every field is classified, and how to project itself onto a subset of
fields (what a recipient may see). Nothing here touches Kafka.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fingerprint_hex
from fastavro.schema import to_parsing_canonical_form

NAMESPACE = "nl.ketenbus"
TYPE_PREFIX = "nl.ketenbus"
CLASSIFICATIONS = ("none", "identifying", "special", "criminal", "location")
TYPES_FILE = "types.avsc"

#: The chain partners (DESIGN.md §3), in topic form. `ketenbus` is the bus itself: it has an
#: inbox (escalations) but no outbox.
PARTNERS: tuple[str, ...] = (
    "veilig-thuis",
    "politie",
    "om",
    "reclassering",
    "raad",
    "gemeente",
    "alarmcentrale",
)
BUS = "ketenbus"
PRODUCERS: tuple[str, ...] = (*PARTNERS, BUS)

#: Families partners publish; the rest are written by the bus itself.
PARTNER_FAMILIES = (
    "Melding",
    "Actieoverleg",
    "SamenOpInAcuut",
    "Zsm",
    "Huisverbod",
    "SlachtofferdeviceAlert",
)
SYSTEM_FAMILIES = ("Escalatie", "Verstrekking", "DeadLetter")


def partner_from_symbol(symbol: str) -> str:
    """Avro enum symbol (`veilig_thuis`) to partner id (`veilig-thuis`)."""
    return symbol.replace("_", "-")


def partner_symbol(partner: str) -> str:
    """Partner id (`veilig-thuis`) to Avro enum symbol (`veilig_thuis`)."""
    return partner.replace("-", "_")


Schema = dict[str, Any]


@dataclass(frozen=True)
class Field:
    name: str
    classification: str
    required: bool  # no default: present in every record and in every projection
    doc: str
    avro_type: Any


@dataclass(frozen=True)
class Family:
    """One event family: an Avro record with a lifecycle enum `stap`."""

    name: str
    schema: Schema  # expanded: every named type inlined at first use
    source: Schema = field(repr=False)  # as written in the .avsc, shared types by name
    parsed: Any = field(repr=False)
    fingerprint: bytes
    fields: tuple[Field, ...]
    steps: tuple[str, ...]
    producers: Mapping[str, frozenset[str]]

    def __repr__(self) -> str:
        return f"Family({self.name})"

    @property
    def slug(self) -> str:
        return self.name.lower()

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"

    def ce_type(self, step: str) -> str:
        if step not in self.steps:
            raise KeyError(f"{self.name} has no step {step!r}")
        return f"{TYPE_PREFIX}.{self.slug}.{step}"

    @property
    def ce_types(self) -> tuple[str, ...]:
        return tuple(self.ce_type(s) for s in self.steps)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def required_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.required)

    def projection(self, released: Iterable[str]) -> Schema:
        """The schema of this family reduced to `released` plus the required fields.

        A recipient's record is written with this schema, so a field that is not released is
        absent from the bytes, not merely empty. Every field left out has a default, so a
        reader holding the full schema still resolves it.
        """
        keep = self.required_fields | frozenset(released)
        unknown = keep - set(self.field_names)
        if unknown:
            raise KeyError(f"{self.name} has no fields {sorted(unknown)}")
        reduced = dict(self.source)
        reduced["fields"] = [f for f in self.source["fields"] if f["name"] in keep]
        return expand(reduced, _shared_types())


def _full_name(node: Mapping[str, Any]) -> str:
    name = str(node["name"])
    return name if "." in name else f"{node.get('namespace', NAMESPACE)}.{name}"


def expand(raw: Schema, shared_types: list[Schema]) -> Schema:
    """Inline the shared named types a family refers to by name, each at its first use.

    The result is self-contained (as single-object fingerprints and integrators' code
    generators need) and keeps every `doc` and `ketenbus.*` attribute.
    """
    definitions = {_full_name(t): t for t in shared_types}
    seen: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            full = node if "." in node else f"{NAMESPACE}.{node}"
            if full in definitions and full not in seen:
                seen.add(full)
                return walk(copy.deepcopy(definitions[full]))
            return full if full in definitions else node
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed"):
                seen.add(_full_name(node))
            return {
                k: (walk(v) if k in ("type", "items", "values", "fields") else v) for k, v in node.items()
            }
        return node

    return {k: (walk(v) if k == "fields" else v) for k, v in copy.deepcopy(raw).items()}


def fingerprint_of(schema: Schema) -> bytes:
    """CRC-64-AVRO fingerprint, little-endian, as single-object encoding writes it."""
    canonical = to_parsing_canonical_form(fastavro.parse_schema(copy.deepcopy(schema), named_schemas={}))
    return bytes.fromhex(_fingerprint_hex(canonical, "CRC-64-AVRO"))


def _package_dir() -> Path:
    return Path(str(resources.files(__package__)))


def schema_files(directory: Path | None = None) -> list[Path]:
    """The family .avsc files of `directory` (default: the shipped schemas)."""
    directory = directory or _package_dir()
    return sorted(p for p in directory.glob("*.avsc") if p.name != TYPES_FILE)


def load_dir(directory: Path) -> dict[str, Family]:
    """Every family defined in `directory` (its types.avsc holds the shared named types)."""
    shared = json.loads((directory / TYPES_FILE).read_text(encoding="utf-8"))
    loaded: dict[str, Family] = {}
    for path in schema_files(directory):
        raw = json.loads(path.read_text(encoding="utf-8"))
        loaded[raw["name"]] = build_family(raw, shared)
    return loaded


@cache
def _shared_types() -> list[Schema]:
    types: list[Schema] = json.loads((_package_dir() / TYPES_FILE).read_text(encoding="utf-8"))
    return types


@cache
def _load() -> dict[str, Family]:
    return load_dir(_package_dir())


def build_family(raw: Schema, shared: list[Schema]) -> Family:
    schema = expand(raw, shared)
    fields = tuple(
        Field(
            name=f["name"],
            classification=f.get("ketenbus.class", ""),
            required="default" not in f,
            doc=f.get("doc", ""),
            avro_type=f["type"],
        )
        for f in schema["fields"]
    )
    # A family without a lifecycle (Verstrekking, DeadLetter) has one fixed step.
    steps: tuple[str, ...] = (raw["ketenbus.stap"],) if "ketenbus.stap" in raw else ()
    for f in schema["fields"]:
        if f["name"] == "stap":
            steps = tuple(f["type"]["symbols"])
    producers = {
        step: frozenset(partner_from_symbol(p) for p in ps)
        for step, ps in raw.get("ketenbus.producers", {}).items()
    }
    return Family(
        name=schema["name"],
        schema=schema,
        source=raw,
        parsed=fastavro.parse_schema(copy.deepcopy(schema), named_schemas={}),
        fingerprint=fingerprint_of(schema),
        fields=fields,
        steps=steps,
        producers=producers,
    )


def families() -> dict[str, Family]:
    """All families by record name (`Melding`, ..., `DeadLetter`)."""
    return _load()


def family(name: str) -> Family:
    try:
        return _load()[name]
    except KeyError:
        raise KeyError(f"unknown event family {name!r}") from None


@cache
def _by_type() -> dict[str, tuple[Family, str]]:
    return {fam.ce_type(step): (fam, step) for fam in _load().values() for step in fam.steps}


def resolve_type(ce_type: str) -> tuple[Family, str]:
    """`nl.ketenbus.huisverbod.opgelegd` or `Huisverbod.opgelegd` to (family, step)."""
    found = _by_type().get(ce_type)
    if found is not None:
        return found
    name, _, step = ce_type.partition(".")
    fam = _load().get(name)
    if fam is None or step not in fam.steps:
        raise KeyError(f"unknown event type {ce_type!r}")
    return fam, step


def all_ce_types() -> tuple[str, ...]:
    return tuple(_by_type())
