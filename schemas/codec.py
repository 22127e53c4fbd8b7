"""Avro single-object encoding with fastavro: `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the
writer schema (little-endian), then the binary datum.

Every message names its writer schema, so no registry server is needed. Decoding resolves the
writer schema against the reader schema of the same family (schema evolution). Every way bytes
can be wrong raises `CodecError` with its own reason code, which the dead-letter queue records.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
import fastavro.validation
from fastavro.validation import ValidationError

from schemas.compat import RELEASED_DIR
from schemas.registry import Family, Schema, families, family, fingerprint_of

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


class CodecError(ValueError):
    """Bytes (or a datum) that cannot be encoded or decoded. `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Reason codes, one per kind of bad input.
EMPTY = "codec.empty"
TOO_SHORT = "codec.header_truncated"
NOT_SINGLE_OBJECT = "codec.not_single_object"
BAD_MAGIC = "codec.bad_magic"
UNKNOWN_FINGERPRINT = "codec.unknown_fingerprint"
TRUNCATED = "codec.body_truncated"
MALFORMED = "codec.malformed_body"
TRAILING = "codec.trailing_bytes"
INVALID_DATUM = "codec.invalid_datum"
REASONS = (
    EMPTY,
    NOT_SINGLE_OBJECT,
    TOO_SHORT,
    BAD_MAGIC,
    UNKNOWN_FINGERPRINT,
    TRUNCATED,
    MALFORMED,
    TRAILING,
    INVALID_DATUM,
)


@dataclass(frozen=True)
class Writer:
    """A schema some producer may write with: a family's current schema, an older release of
    it, or a projection of it onto the fields one recipient may see."""

    family: Family
    schema: Schema
    parsed: Any
    fingerprint: bytes
    fields: tuple[str, ...]


class Codec:
    """Encodes and decodes the families; knows every writer schema it may meet by fingerprint."""

    def __init__(self, known: Mapping[str, Family] | None = None) -> None:
        self._families = dict(known if known is not None else families())
        self._writers: dict[bytes, Writer] = {}
        self._projections: dict[tuple[str, frozenset[str]], Writer] = {}
        for fam in self._families.values():
            self._add(fam, fam.schema)
        if known is None:
            # Records written with a released version keep decoding after the schema evolves.
            for path in sorted(RELEASED_DIR.glob("*.avsc")):
                released = json.loads(path.read_text(encoding="utf-8"))
                if released.get("name") in self._families:
                    self.register(released)

    def _add(self, fam: Family, schema: Schema) -> Writer:
        fp = fingerprint_of(schema)
        existing = self._writers.get(fp)
        if existing is not None:
            return existing
        writer = Writer(
            family=fam,
            schema=schema,
            parsed=fastavro.parse_schema(copy.deepcopy(schema), named_schemas={}),
            fingerprint=fp,
            fields=tuple(f["name"] for f in schema["fields"]),
        )
        self._writers[fp] = writer
        return writer

    def register(self, schema: Schema) -> Writer:
        """Accept `schema` (an older version of a family, say) as a writer schema."""
        return self._add(self._families[schema["name"]], schema)

    def projection(self, fam: Family, released: Iterable[str]) -> Writer:
        """The writer for `fam` restricted to the released fields (cached)."""
        if isinstance(released, frozenset):  # a policy decision's fields: usually cached as is
            writer = self._projections.get((fam.name, released))
            if writer is not None:
                return writer
        key = (fam.name, frozenset(released) | fam.required_fields)
        writer = self._projections.get(key)
        if writer is None:
            writer = self._add(fam, fam.projection(key[1]))
            self._projections[key] = writer
        return writer

    # -- encoding ---------------------------------------------------------------------------

    def encode(self, family_name: str, datum: Mapping[str, Any]) -> bytes:
        fam = self._families[family_name]
        return self.encode_with(self._writers[fam.fingerprint], datum)

    def encode_with(self, writer: Writer, datum: Mapping[str, Any], validate: bool = True) -> bytes:
        """Encode `datum`. `validate` checks types first: fastavro alone writes "yes" as true.
        Only a datum that came out of `decode` may skip it."""
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(writer.fingerprint)
        try:
            # Without raise_errors: fastavro then builds no exception (with a JSON message) for
            # every union branch a value does not take, which cost more than the encode itself.
            if validate and not fastavro.validation.validate(
                datum, writer.parsed, raise_errors=False, strict=True
            ):
                raise ValidationError([])
            fastavro.schemaless_writer(out, writer.parsed, datum, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, ValidationError) as exc:
            raise CodecError(INVALID_DATUM, f"{writer.family.name}: {type(exc).__name__}") from exc
        return out.getvalue()

    def encode_projected(
        self, fam: Family, released: Iterable[str], datum: Mapping[str, Any], validate: bool = True
    ) -> bytes:
        writer = self.projection(fam, released)
        return self.encode_with(writer, {k: datum[k] for k in writer.fields if k in datum}, validate)

    # -- decoding ---------------------------------------------------------------------------

    def writer_of(self, data: bytes, fields_hint: Iterable[str] | None = None) -> Writer:
        """The writer schema named by the header of `data`.

        `fields_hint` (the `ketenbus_fields` header of an outbox record) lets a reader derive
        a projection it has not seen yet; the fingerprint must still match.
        """
        if not data:
            raise CodecError(EMPTY, "no bytes")
        if data[0] != MAGIC[0]:
            raise CodecError(
                NOT_SINGLE_OBJECT, f"first byte {data[:1].hex()}, single-object encoding starts c3"
            )
        if len(data) > 1 and data[1] != MAGIC[1]:
            raise CodecError(BAD_MAGIC, f"marker c3{data[1:2].hex()}, this codec reads version c301")
        if len(data) < HEADER_LEN:
            raise CodecError(TOO_SHORT, f"{len(data)} bytes, header needs {HEADER_LEN}")
        fp = bytes(data[2:HEADER_LEN])
        writer = self._writers.get(fp)
        if writer is None and fields_hint is not None:
            hint = frozenset(fields_hint)  # a generator would be used up by the first family
            for fam in self._families.values():
                if not hint <= set(fam.field_names):
                    continue
                candidate = self.projection(fam, hint)
                if candidate.fingerprint == fp:
                    writer = candidate
                    break
        if writer is None:
            raise CodecError(UNKNOWN_FINGERPRINT, f"no known schema has fingerprint {fp.hex()}")
        return writer

    def decode(
        self, data: bytes, *, resolve: bool = True, fields_hint: Iterable[str] | None = None
    ) -> tuple[Family, dict[str, Any]]:
        """Decode `data` to (family, record).

        With `resolve`, the record is read with the family's current schema (absent fields get
        their defaults); without it, exactly the fields the writer wrote are returned.
        """
        writer = self.writer_of(data, fields_hint)
        fam = writer.family
        record = self._read(data, writer)
        # fastavro accepts a negative enum or union index (Python's negative indexing picks a
        # symbol from the end), so a hostile body can decode "validly". Writing the record
        # again must give the same bytes; anything else is not what a valid writer produced.
        again = io.BytesIO()
        try:
            fastavro.schemaless_writer(again, writer.parsed, record)
        except Exception as exc:
            raise CodecError(MALFORMED, f"{fam.name}: {type(exc).__name__} on re-encoding") from exc
        if again.getvalue() != memoryview(data)[HEADER_LEN:]:
            raise CodecError(MALFORMED, f"{fam.name}: body is not the canonical encoding of its datum")
        if resolve and writer.fingerprint != fam.fingerprint:
            record = self._read(data, writer, self._writers[fam.fingerprint].parsed)
        return fam, record

    @staticmethod
    def _reads_when_padded(data: bytes, writer: Writer, reader: Any) -> bool:
        """Whether the body only lacked bytes: with zeros appended (zero is a valid varint,
        enum index and union branch) it reads. A body that is wrong, not short, still fails."""
        buf = io.BytesIO(bytes(data) + bytes(64))
        buf.seek(HEADER_LEN)
        try:
            fastavro.schemaless_reader(buf, writer.parsed, reader)
        except Exception:
            return False
        return True

    @staticmethod
    def _read(data: bytes, writer: Writer, reader: Any = None) -> dict[str, Any]:
        fam = writer.family
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(buf, writer.parsed, reader)
        except (EOFError, StopIteration) as exc:
            raise CodecError(TRUNCATED, f"{fam.name}: body ends early") from exc
        except Exception as exc:  # fastavro raises many types on garbage
            if buf.tell() >= len(data) and Codec._reads_when_padded(data, writer, reader):
                raise CodecError(TRUNCATED, f"{fam.name}: body ends inside a value") from exc
            raise CodecError(MALFORMED, f"{fam.name}: {type(exc).__name__}") from exc
        if buf.tell() != len(data):
            raise CodecError(TRAILING, f"{fam.name}: {len(data) - buf.tell()} bytes after the datum")
        if not isinstance(record, dict):
            raise CodecError(MALFORMED, f"{fam.name}: not a record")
        return record


_default: Codec | None = None


def default_codec() -> Codec:
    """The process-wide codec over the shipped schemas."""
    global _default
    if _default is None:
        _default = Codec()
    return _default


def encode(family_name: str, datum: Mapping[str, Any]) -> bytes:
    return default_codec().encode(family_name, datum)


def decode(data: bytes, **kwargs: Any) -> tuple[Family, dict[str, Any]]:
    return default_codec().decode(data, **kwargs)


__all__ = [
    "REASONS",
    "Codec",
    "CodecError",
    "Writer",
    "decode",
    "default_codec",
    "encode",
    "family",
]
