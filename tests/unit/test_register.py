"""The register sink's pure parts: migrations in order, schema names quoted, and a batch sorted
into rows to store and records to dead-letter with a reason code (no broker, no database)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from connectors import register
from schemas import default_codec
from streams import topics
from streams.settings import Settings
from tests.samples import sample

VERSTREKKING = {
    "verstrekking_id": "v-1",
    "event_id": "e-1",
    "event_type": "nl.ketenbus.zsm.zaak_aangemeld",
    "zaak_ref": "Z-1",
    "persoon_refs": ["P-1", "P-2"],
    "ontvanger": "om",
    "velden": ["persoon_refs", "zaak_ref"],
    "regel": "zsm-om",
    "grondslag": "Wjsg art. 8",
    "doel": "afdoening",
    "policy_versie": "2026.1",
    "tijdstip": dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC),
}


def record(offset: int, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(
        topic=topics.VERSTREKKINGEN, partition=1, offset=offset, key=b"Z-1", value=value, headers=[]
    )


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in register.MIGRATIONS] == list(range(1, len(register.MIGRATIONS) + 1))


@pytest.mark.parametrize("schema", ["ketenbus", "Register 2026", 'we"ird'])
def test_schema_names_are_quoted(schema: str) -> None:
    quoted = '"' + schema.replace('"', '""') + '"'
    for m in register.MIGRATIONS:
        for statement in m.statements:
            text = register._render(statement, schema).as_string()
            assert "{schema}" not in text
            assert quoted in text


def test_a_batch_is_sorted_into_rows_and_rejections() -> None:
    sink = register.Sink(Settings(bootstrap="127.0.0.1:1"))
    good = default_codec().encode("Verstrekking", VERSTREKKING)
    batch = [
        record(10, good),
        record(11, None),
        record(12, b"\x00garbage"),
        record(13, good[:-3]),
        record(14, default_codec().encode("Melding", sample("Melding", "ontvangen", "Z-1"))),
    ]
    rows, rejected = sink.decode(batch)
    assert [r.values for r in rows] == [
        (*(VERSTREKKING[c] for c in register.COLUMNS[:12]), topics.VERSTREKKINGEN, 1, 10)
    ]
    assert [(r.source.offset, r.reason) for r in rejected] == [
        (11, "codec.empty"),
        (12, "codec.not_single_object"),
        (13, "codec.body_truncated"),
        (14, register.NOT_VERSTREKKING),
    ]


def test_the_sink_needs_a_bus() -> None:
    with pytest.raises(register.RegisterError):
        register.Sink(Settings(bootstrap=None))
