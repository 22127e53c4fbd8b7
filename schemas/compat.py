"""`ketenbus schemas check`: every field classified and documented, every schema BACKWARD
compatible with the version recorded in `schemas/released/`.

BACKWARD: a consumer holding the new schema reads every record written with the released one.
Compatibility is judged by the reference implementation (`avro.compatibility`), a test
dependency: install `ketenbus[test]` to run the check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.registry import CLASSIFICATIONS, Family, Schema, load_dir

PACKAGE_DIR = Path(__file__).resolve().parent
RELEASED_DIR = PACKAGE_DIR / "released"


def released_path(fam: Family, released_dir: Path = RELEASED_DIR) -> Path:
    return released_dir / f"{fam.slug}.avsc"


def classification_problems(fam: Family) -> list[str]:
    problems: list[str] = []

    def walk(record: Schema, path: str) -> None:
        for f in record["fields"]:
            where = f"{fam.name}: field {path}{f['name']}"
            cls = f.get("ketenbus.class")
            if cls not in CLASSIFICATIONS:
                problems.append(
                    f"{where} has no valid ketenbus.class (got {cls!r}; one of {CLASSIFICATIONS})"
                )
            if not str(f.get("doc", "")).strip():
                problems.append(f"{where} has no doc")
            if path == "" and "default" not in f and cls != "none":
                problems.append(f"{where} is always released (no default) so it must be classified none")
            for nested in _records_in(f["type"]):
                walk(nested, f"{path}{f['name']}.")

    walk(fam.schema, "")
    return problems


def _records_in(avro_type: Any) -> list[Schema]:
    if isinstance(avro_type, list):
        return [r for t in avro_type for r in _records_in(t)]
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "record":
            return [avro_type]
        if avro_type.get("type") == "array":
            return _records_in(avro_type["items"])
        if avro_type.get("type") == "map":
            return _records_in(avro_type["values"])
    return []


def compatibility_problems(fam: Family, released: Schema) -> list[str]:
    try:
        from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
        from avro.schema import parse
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the schema check needs the reference `avro` package: pip install 'ketenbus[test]'"
        ) from exc
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        reader=parse(json.dumps(fam.schema)), writer=parse(json.dumps(released))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted({i.name for i in result.incompatibilities})
    details = (
        f"{', '.join(kinds)} at {', '.join(sorted(result.locations))}; {'; '.join(sorted(result.messages))}"
    )
    return [f"{fam.name}: not BACKWARD compatible with the released version ({details})"]


def check(schema_dir: Path = PACKAGE_DIR, released_dir: Path = RELEASED_DIR) -> list[str]:
    """Every problem found; empty when the schemas may be published."""
    problems: list[str] = []
    try:
        found = load_dir(schema_dir)
    except Exception as exc:  # a schema that does not parse at all
        return [f"{schema_dir}: schemas do not load: {exc}"]
    for fam in found.values():
        problems += classification_problems(fam)
        path = released_path(fam, released_dir)
        if not path.exists():
            problems.append(f"{fam.name}: no released version at {path} (run `ketenbus schemas release`)")
            continue
        problems += compatibility_problems(fam, json.loads(path.read_text(encoding="utf-8")))
    return problems


def release(schema_dir: Path = PACKAGE_DIR, released_dir: Path = RELEASED_DIR) -> list[Path]:
    """Record the current schemas as the released versions (after a successful check)."""
    released_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fam in load_dir(schema_dir).values():
        path = released_path(fam, released_dir)
        path.write_text(json.dumps(fam.schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
