"""The condition language of `policy/verstrekkingen.yaml` and `policy/termijnen.yaml`.

A condition is a small boolean expression over the fields of one decoded event:

    {field: acuut, equals: true}          the field has this value
    {field: soort, in: [noodknop, zone]}  the field has one of these values
    {field: signalen, not_empty: true}    the field is present and not null, "" or []
                                          (`not_empty: false`: the reverse)
    {recipient_in: ontvangers}            the recipient (a partner id such as `veilig-thuis`)
                                          is listed in this Partner field
    {all: [c1, c2, ...]}  {any: [c1, c2, ...]}  {not: c}

On a list field (`signalen`, `vormen_van_geweld`) `equals` and `in` mean "contains (any of)":
`{field: signalen, in: [verwurging, wapenbezit]}` holds for `signalen: [scheiding, verwurging]`.
A boolean never equals a number (`true` is not `1`). A condition without a recipient (a
timer, a pattern) makes `recipient_in` false.

`parse` turns the YAML into an immutable `Condition`; `Condition` is also a pydantic field
type that parses on validation. `problems` checks a condition against an event family:
unknown fields, values that are not a symbol of an enum field, values of the wrong type.
Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from schemas.registry import Family, partner_symbol

Record = Mapping[str, Any]
Scalar = bool | int | float | str | None

FIELD_OPS = ("equals", "in", "not_empty")
COMBINATORS = ("all", "any", "not")
OPS = (*FIELD_OPS, "recipient_in", *COMBINATORS)


class ConditionError(ValueError):
    """A condition that cannot be parsed; the message says where in the condition and why."""


# ── The tree ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Condition:
    """One node of a parsed condition. Build it with `parse`; it is immutable and hashable.

    `op` is one of `OPS`. Field tests and `recipient_in` have a `field`; `equals` has one
    `value`, `in` a tuple of values, `not_empty` a bool; `all`, `any` and `not` have
    `children` (`not` exactly one).
    """

    op: str
    field: str | None = None
    value: Any = None
    children: tuple[Condition, ...] = ()

    def evaluate(self, record: Record, recipient: str | None = None) -> bool:
        """Whether `record` (a decoded event) meets this condition, for `recipient` if given."""
        if self.op == "all":
            return all(c.evaluate(record, recipient) for c in self.children)
        if self.op == "any":
            return any(c.evaluate(record, recipient) for c in self.children)
        if self.op == "not":
            return not self.children[0].evaluate(record, recipient)
        actual = record.get(self.field or "")
        if self.op == "not_empty":
            return _is_empty(actual) is not self.value
        if self.op == "recipient_in":
            return recipient is not None and partner_symbol(recipient) in _items(actual)
        wanted = self.values
        return any(_same(item, w) for item in _items(actual) for w in wanted)

    @property
    def values(self) -> tuple[Scalar, ...]:
        """The values an `equals` or `in` test compares with (none for other operators)."""
        if self.op == "equals":
            return (self.value,)
        if self.op == "in":
            return tuple(self.value)
        return ()

    def fields(self) -> set[str]:
        """Every field name this condition reads."""
        own = {self.field} if self.field else set()
        return own.union(*(c.fields() for c in self.children))

    def walk(self) -> Iterator[Condition]:
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def describe(self) -> str:
        """In Dutch, for `ketenbus policy explain`: `(acuut = True of signalen niet leeg)`."""
        if self.op in ("all", "any"):
            joiner = " en " if self.op == "all" else " of "
            return "(" + joiner.join(c.describe() for c in self.children) + ")"
        if self.op == "not":
            return f"niet {self.children[0].describe()}"
        if self.op == "equals":
            return f"{self.field} = {self.value!r}"
        if self.op == "in":
            return f"{self.field} in {list(self.value)}"
        if self.op == "not_empty":
            return f"{self.field} {'niet ' if self.value else ''}leeg"
        return f"ontvanger staat in {self.field}"

    def to_raw(self) -> dict[str, Any]:
        """The YAML form again: `parse(c.to_raw()) == c`."""
        if self.op in ("all", "any"):
            return {self.op: [c.to_raw() for c in self.children]}
        if self.op == "not":
            return {"not": self.children[0].to_raw()}
        if self.op == "recipient_in":
            return {"recipient_in": self.field}
        value = list(self.value) if self.op == "in" else self.value
        return {"field": self.field, self.op: value}

    # -- pydantic: a field annotated `Condition` parses the YAML form ----------------------

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda c: c.to_raw()),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "object",
            "description": "A condition: {field, equals|in|not_empty}, {recipient_in}, {all}, {any}"
            " or {not}.",
        }


def _validate(value: Any) -> Condition:
    # ConditionError is a ValueError, so pydantic reports it as a validation error.
    return value if isinstance(value, Condition) else parse(value)


def _items(value: Any) -> tuple[Any, ...]:
    # A list field holds when any element does; any other value (None too) is one item.
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a boolean field never equals a number.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and len(value) == 0)


# ── Parsing ─────────────────────────────────────────────────────────────────────────────


def parse(raw: Any) -> Condition:
    """The condition `raw` (parsed YAML) stands for; raises `ConditionError` saying what is wrong."""
    return _parse(raw, ())


def _parse(raw: Any, path: tuple[str, ...]) -> Condition:
    def fail(message: str) -> ConditionError:
        return ConditionError(f"{'.'.join(path)}: {message}" if path else message)

    if not isinstance(raw, Mapping) or not raw:
        raise fail(f"a condition is a mapping such as {{field: acuut, equals: true}}, got {raw!r}")
    keys = {str(k) for k in raw}
    structural = sorted(keys & {"recipient_in", *COMBINATORS})
    if structural:
        if len(keys) != 1:
            others = ", ".join(sorted(keys - {structural[0]}))
            raise fail(f"a condition with {structural[0]} has no other keys, got also {others}")
        (op,) = structural
        arg = raw[op]
        if op == "not":
            return Condition("not", children=(_parse(arg, (*path, "not")),))
        if op == "recipient_in":
            if not isinstance(arg, str) or not arg:
                raise fail(f"recipient_in takes the name of a Partner field, got {arg!r}")
            return Condition("recipient_in", field=arg)
        if not isinstance(arg, list) or not arg:
            raise fail(f"{op} takes a non-empty list of conditions, got {arg!r}")
        children = tuple(_parse(c, (*path, op, str(i))) for i, c in enumerate(arg))
        return Condition(op, children=children)
    if "field" not in keys:
        raise fail(
            f"not a condition: {dict(raw)!r}; a condition has a field (with equals, in or"
            " not_empty), recipient_in, all, any or not"
        )
    field = raw["field"]
    if not isinstance(field, str) or not field:
        raise fail(f"field takes a field name, got {field!r}")
    ops = keys - {"field"}
    unknown = sorted(ops - set(FIELD_OPS))
    if unknown:
        raise fail(f"unknown operator {unknown[0]!r} on {field!r} (one of {', '.join(FIELD_OPS)})")
    if len(ops) != 1:
        raise fail(f"condition on {field!r} needs exactly one of {', '.join(FIELD_OPS)}")
    (op,) = ops
    value = raw[op]
    if op == "not_empty":
        if not isinstance(value, bool):
            raise fail(f"not_empty on {field!r} takes true or false, got {value!r}")
        return Condition(op, field=field, value=value)
    if op == "in":
        if not isinstance(value, list | tuple) or not value:
            raise fail(f"'in' on {field!r} takes a non-empty list of values, got {value!r}")
        bad = [v for v in value if not _is_scalar(v)]
        if bad:
            raise fail(f"'in' on {field!r} lists plain values (text, number, true/false), not {bad[0]!r}")
        return Condition(op, field=field, value=tuple(value))
    if not _is_scalar(value):
        raise fail(
            f"'equals' on {field!r} takes one plain value (text, number, true/false or null),"
            f" not {value!r}; use 'in' for several"
        )
    return Condition(op, field=field, value=value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


# ── Checks against a family ─────────────────────────────────────────────────────────────


def core_type(avro_type: Any) -> Any:
    """Look through ["null", T] and arrays to the type a condition value is compared with."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        avro_type = branches[0] if len(branches) == 1 else avro_type
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        return core_type(avro_type["items"])
    return avro_type


def problems(condition: Condition | None, family: Family, *, subject: str | None = None) -> list[str]:
    """Why `condition` cannot be meant for events of `family` (empty when it is fine).

    Unknown fields (`<subject> has no field 'x'`; `subject` defaults to the family name, e.g.
    an event type), values that are not a symbol of an enum field or not of the field's type,
    `equals`/`in` on a field of records, and `recipient_in` on a field that does not hold
    partners.
    """
    if condition is None:
        return []
    found: list[str] = []
    for node in condition.walk():
        if node.field is None:
            continue
        if node.field not in family.field_names:
            found.append(f"{subject or family.name} has no field {node.field!r}")
            continue
        core = core_type(family.field(node.field).avro_type)
        if node.op == "recipient_in":
            if not (isinstance(core, dict) and core.get("type") == "enum" and core.get("name") == "Partner"):
                found.append(
                    f"{family.name}.{node.field} does not list partners, so recipient_in cannot use it"
                )
            continue
        if node.values and isinstance(core, dict) and core.get("type") in ("record", "map"):
            found.append(f"{family.name}.{node.field} holds records; {node.op} cannot compare them")
            continue
        found += [p for v in node.values if (p := _value_problem(family, node.field, core, v))]
    return found


def _value_problem(fam: Family, field: str, core: Any, value: Scalar) -> str | None:
    if value is None:
        return None
    if isinstance(core, dict) and core.get("type") == "enum":
        if value not in core["symbols"]:
            symbols = ", ".join(core["symbols"])
            return f"{value!r} is not a value of {field} ({core['name']}: {symbols})"
    elif core == "boolean" and not isinstance(value, bool):
        return f"{fam.name}.{field} is true or false, not {value!r}"
    elif core in ("int", "long", "float", "double"):
        whole = core in ("int", "long")
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            return f"{fam.name}.{field} is a number, not {value!r}"
    elif core == "string" and not isinstance(value, str):
        return f"{fam.name}.{field} is text, not {value!r}"
    return None
