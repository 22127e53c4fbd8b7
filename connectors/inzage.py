"""`ketenbus inzage PERSOON_REF`: every registered disclosure about one person, for an AVG
art. 15 request: which partner received which event type with which fields, on what legal basis
(grondslag), for what purpose (doel), and when. Reads the register `connectors.register` fills.

The answer names only the person asked about: other persons the same events concern are
personal data of others and stay out of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from connectors import register
from schemas.envelope import format_time
from streams.deadlines import AMSTERDAM

if TYPE_CHECKING:
    from streams.settings import Settings

FORMATS = ("table", "json")
TABLE_COLUMNS = ("tijdstip", "ontvanger", "event_type", "velden", "grondslag", "doel")


@dataclass(frozen=True)
class Row:
    """One disclosure about the person asked about."""

    persoon_ref: str
    verstrekking_id: str
    event_id: str
    event_type: str
    zaak_ref: str
    ontvanger: str
    velden: tuple[str, ...]
    regel: str
    grondslag: str
    doel: str
    policy_versie: str
    tijdstip: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "tijdstip": format_time(self.tijdstip),
            "ontvanger": self.ontvanger,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "zaak_ref": self.zaak_ref,
            "velden": list(self.velden),
            "grondslag": self.grondslag,
            "doel": self.doel,
            "regel": self.regel,
            "policy_versie": self.policy_versie,
            "verstrekking_id": self.verstrekking_id,
        }


# The register's columns but the other persons the event is about and the Kafka provenance:
# an inzage shows what was disclosed about this person, not about the others.
_SELECTED = tuple(
    c for c in register.COLUMNS if c not in ("persoon_refs", "kafka_topic", "kafka_partition", "kafka_offset")
)


def query(conn_or_dsn: psycopg.Connection[Any] | str, schema: str, persoon_ref: str) -> list[Row]:
    """Every disclosure whose event concerns `persoon_ref`, by time, then recipient."""
    statement = sql.SQL(
        "SELECT {cols} FROM {table} WHERE persoon_refs @> ARRAY[%s]::text[] "
        "ORDER BY tijdstip, ontvanger, verstrekking_id"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, _SELECTED)),
        table=sql.Identifier(schema, "verstrekkingen"),
    )
    if isinstance(conn_or_dsn, str):
        with psycopg.connect(conn_or_dsn, application_name="ketenbus-inzage") as conn:
            return query(conn, schema, persoon_ref)
    rows = conn_or_dsn.execute(statement, (persoon_ref,)).fetchall()
    return [
        Row(persoon_ref, vid, eid, etype, zaak, ontv, tuple(velden), regel, grond, doel, versie, t)
        for vid, eid, etype, zaak, ontv, velden, regel, grond, doel, versie, t in rows
    ]


def _local(t: dt.datetime) -> str:
    return t.astimezone(AMSTERDAM).isoformat(sep=" ", timespec="seconds")


def render_table(rows: Sequence[Row], persoon_ref: str) -> str:
    """Aligned text columns under a line naming the person and the count."""
    if not rows:
        return f"inzage {persoon_ref}: no disclosures registered for {persoon_ref}\n"
    head = (
        f"inzage {persoon_ref}: {len(rows)} disclosure(s) registered "
        "(tijdstip in Europe/Amsterdam; velden = the fields released)"
    )
    cells = [
        (_local(r.tijdstip), r.ontvanger, r.event_type, ", ".join(r.velden), r.grondslag, r.doel)
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(TABLE_COLUMNS)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    body = [line(TABLE_COLUMNS), line(["-" * w for w in widths]), *(line(c) for c in cells)]
    return "\n".join([head, "", *body, ""])


def render_json(rows: Sequence[Row], persoon_ref: str) -> str:
    return json.dumps(
        {"persoon_ref": persoon_ref, "count": len(rows), "verstrekkingen": [r.as_json() for r in rows]},
        indent=2,
        ensure_ascii=False,
    )


def run(persoon_ref: str, fmt: str, settings: Settings) -> int:
    """Print the disclosures about `persoon_ref`; 0 also when there are none, 1 when the
    register cannot be read, 2 for an unknown format."""
    if fmt not in FORMATS:
        print(f"inzage: unknown format {fmt!r}; one of {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        rows = query(settings.pg_dsn, settings.pg_schema, persoon_ref)
    except psycopg.errors.UndefinedTable:
        print(
            f"inzage: no register in schema {settings.pg_schema!r}: has the register sink run "
            "(ketenbus register, KETENBUS_PG_SCHEMA)?",
            file=sys.stderr,
        )
        return 1
    except psycopg.OperationalError as exc:
        # Not the DSN itself: it may hold a password.
        print(f"inzage: cannot reach the register database ({type(exc).__name__})", file=sys.stderr)
        return 1
    if fmt == "json":
        print(render_json(rows, persoon_ref))
        if not rows:
            print(f"inzage: no disclosures registered for {persoon_ref}", file=sys.stderr)
    else:
        print(render_table(rows, persoon_ref), end="")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("persoon_ref", help="the pseudonymous person reference")
    parser.add_argument("--format", choices=FORMATS, default="table")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """`inzage PERSOON_REF [--format table|json]`, register from KETENBUS_PG_DSN/_PG_SCHEMA."""
    from streams.settings import Settings

    parser = argparse.ArgumentParser(prog="ketenbus inzage", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args.persoon_ref, args.format, settings or Settings())


if __name__ == "__main__":
    sys.exit(main())
