"""pydantic models of the event families, generated from the .avsc files at import.

The .avsc files are the single source of truth: a model cannot drift from its schema because it
is built from it. The HTTP ingress and the Python client validate with these models; `to_avro`
turns a model into the datum the codec writes.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from schemas.registry import Family, families, family

PRIMITIVES: dict[str, Any] = {
    "string": str,
    "boolean": bool,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "bytes": bytes,
    "null": type(None),
}
INT_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class EventModel(BaseModel):
    """Base of every generated model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Builder:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def python_type(self, avro: Any, namespace: str) -> Any:
        if isinstance(avro, str):
            if avro in PRIMITIVES:
                return PRIMITIVES[avro]
            full = avro if "." in avro else f"{namespace}.{avro}"
            return self.named[full]
        if isinstance(avro, list):
            members = [self.python_type(m, namespace) for m in avro if m != "null"]
            inner = members[0] if len(members) == 1 else Any
            return Optional[inner] if "null" in avro else inner  # noqa: UP045 - built at runtime
        kind = avro["type"]
        if avro.get("logicalType") == "timestamp-millis":
            return dt.datetime
        if kind in PRIMITIVES:
            return PRIMITIVES[kind]
        if kind == "array":
            return list[self.python_type(avro["items"], namespace)]  # type: ignore[misc]
        if kind == "map":
            return dict[str, self.python_type(avro["values"], namespace)]  # type: ignore[misc]
        ns = avro.get("namespace", namespace)
        full = f"{ns}.{avro['name']}"
        if kind == "enum":
            built: Any = Literal[tuple(avro["symbols"])]
        elif kind == "record":
            built = self.record(avro, ns)
        else:
            raise TypeError(f"unsupported Avro type {kind!r}")
        self.named[full] = built
        return built

    def record(self, schema: dict[str, Any], namespace: str) -> type[EventModel]:
        definitions: dict[str, Any] = {}
        for f in schema["fields"]:
            annotation = self.python_type(f["type"], namespace)
            extra = {"ketenbus_class": f.get("ketenbus.class")}
            prim = f["type"] if isinstance(f["type"], str) else None
            bounds = INT_BOUNDS.get(prim or "")
            constraints: dict[str, Any] = {"ge": bounds[0], "le": bounds[1]} if bounds else {}
            if "default" not in f:
                field = Field(..., description=f.get("doc"), json_schema_extra=extra, **constraints)
            elif isinstance(f["default"], list):
                items = list(f["default"])
                field = Field(
                    default_factory=lambda items=items: list(items),
                    description=f.get("doc"),
                    json_schema_extra=extra,
                )
            else:
                field = Field(f["default"], description=f.get("doc"), json_schema_extra=extra, **constraints)
            definitions[f["name"]] = (annotation, field)
        model: type[EventModel] = create_model(
            schema["name"], __base__=EventModel, __doc__=schema.get("doc"), **definitions
        )
        return model


@cache
def _models() -> dict[str, type[EventModel]]:
    builder = _Builder()
    return {name: builder.record(fam.schema, fam.schema["namespace"]) for name, fam in families().items()}


def model_for(family_name: str) -> type[EventModel]:
    """The pydantic model of a family (`Melding`, `Huisverbod`, ...)."""
    family(family_name)  # a clear KeyError for an unknown family
    return _models()[family_name]


@cache
def projection_model(family_name: str, released: frozenset[str]) -> type[EventModel]:
    """The model of what one recipient receives of a family: the released fields (and the
    required ones), nothing else. Built from the same projected schema the router writes."""
    fam = family(family_name)
    schema = fam.projection(released)
    return _Builder().record(schema, schema["namespace"])


def validate(fam: Family, data: dict[str, Any]) -> EventModel:
    """Validate `data` against the family's model; raises pydantic.ValidationError."""
    return model_for(fam.name).model_validate(data)


def to_avro(event: BaseModel) -> dict[str, Any]:
    """The datum the codec writes for a validated model."""
    return event.model_dump(mode="python")


def __getattr__(name: str) -> type[EventModel]:
    # `from schemas.models import Melding` works for every family.
    if name in families():
        return _models()[name]
    raise AttributeError(name)
