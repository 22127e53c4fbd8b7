"""Micro-benchmark of the codec: records per second, encode and decode.

fastavro through `schemas.codec.Codec` (single-object encoding: header, then the datum; decode
checks header, fingerprint and trailing bytes) against the reference implementation `avro`
(`avro.io.DatumWriter` / `DatumReader` with `BinaryEncoder` / `BinaryDecoder`, one writer and
reader per family made up front, the same 10-byte header written and skipped by hand so both
sides handle the same bytes).

The records are a fixed, seeded, synthetic mix over the six partner families, every lifecycle
step, with realistic values (pseudonym hashes, case numbers, Dutch addresses, 2026 timestamps)
and optional fields filled about half the time. No hypothesis: the same seed gives the same
records, so runs compare.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import json
import platform
import random
import time
import uuid
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

import fastavro

from schemas.codec import HEADER_LEN, MAGIC, Codec
from schemas.registry import PARTNER_FAMILIES, Family, family

NAME = "codec"
RECORDS = 2000
SEED = 20260302
REPEATS = 5
REFERENCE_REPEATS = 3

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
STREETS = ("Dorpsstraat", "Kerkweg", "Stationsplein", "Molenlaan", "Schoolstraat", "Julianastraat")
PLACES = (("3511", "Utrecht"), ("1012", "Amsterdam"), ("9711", "Groningen"), ("5611", "Eindhoven"))


def _address(rng: random.Random) -> str:
    code, place = rng.choice(PLACES)
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in range(2))
    return f"{rng.choice(STREETS)} {rng.randint(1, 250)}, {code} {letters} {place}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _time(rng: random.Random) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=rng.randrange(90 * 24 * 3600 * 1000))


#: Values for fields by name, where the type alone gives unrealistic ones.
_BY_NAME: dict[str, Callable[[random.Random], Any]] = {
    "zaak_ref": lambda r: f"ZAAK-2026-{r.randrange(1, 10**6):06d}",
    "persoon_ref": lambda r: f"{r.getrandbits(256):064x}",
    "woonadres": _address,
    "contactadres": _address,
    "besluit_id": _uuid,
    "alarm_id": _uuid,
    "monitoring_maanden": lambda r: r.choice((3, 6, 12)),
    "afstand_m": lambda r: r.randrange(0, 5000),
    "nauwkeurigheid_m": lambda r: r.randrange(3, 50),
    "lat": lambda r: round(r.uniform(50.75, 53.55), 6),
    "lon": lambda r: round(r.uniform(3.35, 7.22), 6),
}


class _Synth:
    """Walks a family schema with a seeded `random.Random`; named types by full name."""

    def __init__(self, rng: random.Random, schema: Mapping[str, Any]) -> None:
        self.rng = rng
        self.named: dict[str, Any] = {}
        self._collect(schema)

    def _collect(self, node: Any) -> None:
        """Remember every named type up front: a later use may come before the value of its
        first use is generated (an empty array defines the type but draws no item)."""
        if isinstance(node, list):
            for branch in node:
                self._collect(branch)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed"):
                name = node["name"]
                self.named[name if "." in name else f"{node['namespace']}.{name}"] = node
            for key in ("type", "items", "values"):
                if isinstance(node.get(key), dict | list):
                    self._collect(node[key])
            for f in node.get("fields", ()):
                self._collect(f["type"])

    def value(self, node: Any, name: str) -> Any:
        rng = self.rng
        if name in _BY_NAME and not (isinstance(node, list) and rng.random() < 0.5):
            return _BY_NAME[name](rng)
        if isinstance(node, list):  # ["null", X]: null about half the time
            branches = [b for b in node if b != "null"]
            if len(branches) < len(node) and rng.random() < 0.5:
                return None
            return self.value(rng.choice(branches), name)
        if isinstance(node, str):
            if node in self.named:
                return self.value(self.named[node], name)
            return self._primitive(node)
        kind = node["type"]
        if isinstance(kind, dict | list):
            return self.value(kind, name)
        if node.get("logicalType") == "timestamp-millis":
            return _time(rng)
        if kind == "record":
            return {f["name"]: self.value(f["type"], f["name"]) for f in node["fields"]}
        if kind == "enum":
            return rng.choice(node["symbols"])
        if kind == "array":
            low = 1 if name == "persoon_refs" else 0
            return [self.value(node["items"], name) for _ in range(rng.randint(low, 3))]
        return self._primitive(kind)

    def _primitive(self, kind: str) -> Any:
        rng = self.rng
        if kind == "boolean":
            return rng.random() < 0.3
        if kind == "int":
            return rng.randrange(0, 1000)
        if kind == "long":
            return rng.randrange(0, 10**9)
        if kind == "double":
            return rng.uniform(-180, 180)
        if kind == "string":
            return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(rng.randint(4, 24)))
        if kind == "bytes":
            return rng.randbytes(rng.randint(0, 32))
        if kind == "null":
            return None
        raise NotImplementedError(kind)


def synthetic_records(n: int = RECORDS, seed: int = SEED) -> list[tuple[str, dict[str, Any]]]:
    """`n` (family name, record) pairs over the partner families, deterministic for `seed`."""
    rng = random.Random(seed)
    fams = [family(name) for name in PARTNER_FAMILIES]
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        fam = fams[i % len(fams)]
        record = _Synth(rng, fam.schema).value(fam.schema, fam.name)
        record["stap"] = fam.steps[rng.randrange(len(fam.steps))]
        out.append((fam.name, record))
    rng.shuffle(out)
    return out


def _best_rate(n: int, repeats: int, run: Callable[[], object]) -> float:
    """Records per second of the fastest of `repeats` timed runs (after one warm-up)."""
    run()
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return n / best


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def run(n: int = RECORDS, seed: int = SEED, repeats: int = REPEATS) -> dict[str, Any]:
    import avro.io
    import avro.schema

    records = synthetic_records(n, seed)
    codec = Codec()
    fams: Mapping[str, Family] = {name: family(name) for name in PARTNER_FAMILIES}
    writers = {name: avro.io.DatumWriter(avro.schema.parse(json.dumps(f.schema))) for name, f in fams.items()}
    readers = {name: avro.io.DatumReader(avro.schema.parse(json.dumps(f.schema))) for name, f in fams.items()}
    headers = {name: MAGIC + f.fingerprint for name, f in fams.items()}

    def fastavro_encode() -> list[bytes]:
        return [codec.encode(name, record) for name, record in records]

    def avro_encode() -> list[bytes]:
        out = []
        for name, record in records:
            buf = io.BytesIO()
            buf.write(headers[name])
            writers[name].write(record, avro.io.BinaryEncoder(buf))
            out.append(buf.getvalue())
        return out

    encoded = fastavro_encode()
    names = [name for name, _ in records]
    pairs = list(zip(names, encoded, strict=True))

    def fastavro_decode() -> list[Any]:
        return [codec.decode(raw) for raw in encoded]

    # The same work without the codec's safety checks: what the checks cost.
    writer_of = {name: codec.projection(fams[name], fams[name].field_names) for name in fams}

    def trusted_encode() -> list[bytes]:
        return [codec.encode_with(writer_of[name], record, validate=False) for name, record in records]

    def raw_decode() -> list[Any]:
        out = []
        for name, raw in pairs:
            buf = io.BytesIO(raw)
            buf.seek(HEADER_LEN)
            out.append(fastavro.schemaless_reader(buf, fams[name].parsed, None))
        return out

    def avro_decode() -> list[Any]:
        out = []
        for name, raw in pairs:
            buf = io.BytesIO(raw)
            buf.seek(HEADER_LEN)
            out.append(readers[name].read(avro.io.BinaryDecoder(buf)))
        return out

    # Both implementations must agree before their speed means anything.
    identical = avro_encode() == encoded
    round_trip = [record for _, record in fastavro_decode()] == [record for _, record in records]
    reference_round_trip = avro_decode() == [record for _, record in records]
    if not (identical and round_trip and reference_round_trip):
        raise AssertionError(
            f"codec bench: bytes {identical}, round trip {round_trip}/{reference_round_trip}"
        )

    reference_repeats = max(1, min(repeats, REFERENCE_REPEATS))
    return {
        "name": NAME,
        "parameters": {
            "records": n,
            "seed": seed,
            "families": list(PARTNER_FAMILIES),
            "mean_record_bytes": round(sum(map(len, encoded)) / n, 1),
            "repeats": repeats,
            "reference_repeats": reference_repeats,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "figures": {
            "implementation": f"fastavro {_version('fastavro')} via schemas.codec.Codec",
            "encode_records_per_s": round(_best_rate(n, repeats, fastavro_encode)),
            "decode_records_per_s": round(_best_rate(n, repeats, fastavro_decode)),
            "encode_without_validation_per_s": round(_best_rate(n, repeats, trusted_encode)),
            "decode_without_reencode_check_per_s": round(_best_rate(n, repeats, raw_decode)),
        },
        "baseline": {
            "implementation": f"avro {_version('avro')} (reference, DatumWriter/DatumReader)",
            "encode_records_per_s": round(_best_rate(n, reference_repeats, avro_encode)),
            "decode_records_per_s": round(_best_rate(n, reference_repeats, avro_decode)),
        },
    }
