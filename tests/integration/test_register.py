"""The disclosure register on the real embedded broker and the real PostgreSQL: the sink's own
migrations, exactly one row per disclosure across a SIGKILL and a full replay, bad records to
the DLQ, and `inzage` answers that match the Verstrekking records on the topic.

Every test writes to a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY
from psycopg import sql
from psycopg.rows import dict_row

from connectors import inzage, register
from connectors.harness import Reader
from schemas import default_codec
from schemas.codec import CodecError
from streams import topics
from streams.broker import EmbeddedBroker, stop_process
from streams.settings import Settings
from tests.bus import REPO, Publisher, Tap, case_ref
from tests.samples import MARKER, sample

pytestmark = pytest.mark.integration

DSN = Settings().pg_dsn
EVENTS = 750  # Zsm zaak_aangemeld by politie: 4 disclosures each, 3000 in all
SINK_BATCH = 20  # records per poll and transaction: the backlog takes many small commits


# -- helpers ------------------------------------------------------------------------------------


def eventually(check: Callable[[], bool], timeout: float, message: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(every)


def db() -> psycopg.Connection[Any]:
    return psycopg.connect(DSN, autocommit=True)


def count_rows(schema: str) -> int:
    with db() as conn:
        try:
            row = conn.execute(f'SELECT count(*) FROM "{schema}".verstrekkingen').fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def registered(schema: str) -> dict[str, dict[str, Any]]:
    cols = ", ".join(register.COLUMNS)
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        try:
            rows = cur.execute(f'SELECT {cols} FROM "{schema}".verstrekkingen').fetchall()
        except psycopg.errors.UndefinedTable:  # the sink has not migrated yet
            return {}
    return {r["verstrekking_id"]: r for r in rows}


def verstrekkingen_on_topic(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Every decodable Verstrekking record, by id (a redelivered id appears once)."""
    found: dict[str, dict[str, Any]] = {}
    for m in records:
        try:
            fam, v = default_codec().decode(m.value or b"")
        except CodecError:
            continue
        if fam.name == "Verstrekking":
            found.setdefault(v["verstrekking_id"], v)
    return found


def row_of(v: dict[str, Any]) -> tuple[Any, ...]:
    """What the register must hold of a Verstrekking record."""
    return tuple(v[c] for c in register.COLUMNS[:12])


def disclosure_key(v: dict[str, Any]) -> tuple[Any, ...]:
    return (v["event_id"], v["ontvanger"], tuple(v["velden"]), v["grondslag"], v["doel"])


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"t_register_{uuid.uuid4().hex[:10]}"
    yield name
    with db() as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def sink_settings(bootstrap: str, schema: str) -> Settings:
    return Settings(bootstrap=bootstrap, pg_schema=schema, app_id=f"t-register-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def sink_thread(settings: Settings, batch_size: int = register.DEFAULT_BATCH) -> Iterator[None]:
    """The sink in this process, stopped (and its failure raised) on exit."""
    stop = threading.Event()
    failed: list[BaseException] = []

    def target() -> None:
        try:
            register.run(settings, stop, batch_size=batch_size)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="register-sink")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the sink did not stop"
    assert not failed, failed


class SinkProcess:
    """`python -m connectors.register` in a subprocess, as an operator runs it."""

    def __init__(self, settings: Settings, log_path: Path, batch_size: int) -> None:
        self.env = {
            **os.environ,
            "KETENBUS_BOOTSTRAP": str(settings.bootstrap),
            "KETENBUS_PG_DSN": settings.pg_dsn,
            "KETENBUS_PG_SCHEMA": settings.pg_schema,
            "KETENBUS_APP_ID": settings.app_id,
        }
        self.log_path = log_path
        self.batch_size = batch_size
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SinkProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "connectors.register", "--batch-size", str(self.batch_size)],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=out,
            )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        assert self.proc is not None
        stop_process(self.proc, 30)
        return self.proc.returncode


def sample_value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


# -- migrations ---------------------------------------------------------------------------------


def test_migrations_are_applied_once(schema: str) -> None:
    with db() as conn:
        assert register.migrate(conn, schema) == [m.version for m in register.MIGRATIONS]
        assert register.migrate(conn, schema) == []
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_migrations').fetchall()
        indexes = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (schema,)
            ).fetchall()
        }
    assert sorted(v for (v,) in versions) == [m.version for m in register.MIGRATIONS]
    assert "USING gin (persoon_refs)" in indexes["verstrekkingen_persoon_refs"]
    assert "(zaak_ref)" in indexes["verstrekkingen_zaak_ref"]
    assert "verstrekkingen_pkey" in indexes


def test_sinks_starting_together_migrate_once(schema: str) -> None:
    starters = 4
    barrier = threading.Barrier(starters)
    applied: list[list[int]] = []
    failed: list[BaseException] = []

    def start() -> None:
        with db() as conn:
            barrier.wait()
            try:
                applied.append(register.migrate(conn, schema))
            except BaseException as exc:
                failed.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failed, failed
    assert sorted(applied) == [[]] * (starters - 1) + [[m.version for m in register.MIGRATIONS]]


# -- the sink -----------------------------------------------------------------------------------


def publish_bad_verstrekkingen(publisher: Publisher) -> dict[str, str]:
    """Records on keten.verstrekkingen the register cannot take, keyed uniquely; returns
    key -> the reason code the DLQ must carry."""
    zaak = case_ref("REGBAD")
    good = default_codec().encode(
        "Verstrekking",
        {
            "verstrekking_id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "event_type": "nl.ketenbus.melding.ontvangen",
            "zaak_ref": zaak,
            "persoon_refs": [f"{MARKER}-nul-{zaak}"],
            "ontvanger": "om",
            "velden": ["signalen"],
            "regel": "r",
            # Avro carries a NUL in a string; a PostgreSQL text cannot hold one.
            "grondslag": "grond\x00slag",
            "doel": "doel",
            "policy_versie": "t",
            "tijdstip": dt.datetime.now(dt.UTC),
        },
    )
    bad = {
        f"{zaak}-noavro": (b"{}", "codec.not_single_object"),
        f"{zaak}-truncated": (good[:-7], "codec.body_truncated"),
        f"{zaak}-melding": (
            default_codec().encode("Melding", sample("Melding", "ontvangen", zaak)),
            register.NOT_VERSTREKKING,
        ),
        f"{zaak}-nul": (good, register.REFUSED_BY_DATABASE),
    }
    for key, (value, _) in bad.items():
        publisher.raw(topics.VERSTREKKINGEN, key.encode(), value, wait=False)
    return {key: reason for key, (_, reason) in bad.items()}


def test_sink_killed_mid_stream_leaves_exactly_one_row_per_disclosure(
    router, publisher: Publisher, tap: Tap, broker: EmbeddedBroker, schema: str, tmp_path: Path
) -> None:
    zaken = [case_ref("REG") for _ in range(EVENTS)]
    for zaak in zaken[: EVENTS // 2]:
        publisher.event("politie", "Zsm", sample("Zsm", "zaak_aangemeld", zaak), wait=False)
    bad = publish_bad_verstrekkingen(publisher)  # amid the stream
    for zaak in zaken[EVENTS // 2 :]:
        publisher.event("politie", "Zsm", sample("Zsm", "zaak_aangemeld", zaak), wait=False)
    publisher.flush()
    tap.wait(
        lambda t: all(len(t.records(z, topics.VERSTREKKINGEN)) >= 4 for z in zaken),
        timeout=60,
        message="every disclosure on keten.verstrekkingen",
    )
    tap.sync()
    on_topic = verstrekkingen_on_topic(tap.records(topic=topics.VERSTREKKINGEN))
    refused = {v["verstrekking_id"] for v in on_topic.values() if "\x00" in v["grondslag"]}
    expected = {vid: v for vid, v in on_topic.items() if vid not in refused}
    assert len(expected) >= 4 * EVENTS and len(refused) >= 1

    settings = sink_settings(broker.bootstrap, schema)
    sink = SinkProcess(settings, tmp_path / "sink.log", SINK_BATCH).start()
    eventually(lambda: count_rows(schema) >= len(expected) // 4, 60, "the sink to store a quarter")
    sink.kill()
    at_kill = count_rows(schema)
    assert 0 < at_kill < len(expected), f"the kill did not land mid-stream ({at_kill}/{len(expected)})"

    sink.start()  # same consumer group: it resumes from the last committed offsets
    eventually(lambda: count_rows(schema) >= len(expected), 60, "the restarted sink to catch up", 0.1)
    tap.wait(
        lambda t: all(t.records(key, topics.DLQ) for key in bad),
        timeout=30,
        message="the bad records in the DLQ",
    )
    assert sink.stop() == 0
    log = (tmp_path / "sink.log").read_text(encoding="utf-8")
    assert "register sink stopped" in log
    assert MARKER not in log, "a log line holds a value of a record"

    rows = registered(schema)
    assert set(rows) == set(expected), (
        f"missing {len(set(expected) - set(rows))}, unexpected {len(set(rows) - set(expected))}"
    )
    with db() as conn:
        total, distinct = conn.execute(
            f'SELECT count(*), count(DISTINCT verstrekking_id) FROM "{schema}".verstrekkingen'
        ).fetchone() or (0, 0)
    assert total == distinct == len(expected)
    for vid, v in expected.items():
        assert tuple(rows[vid][c] for c in register.COLUMNS[:12]) == row_of(v), vid
        assert rows[vid]["kafka_topic"] == topics.VERSTREKKINGEN

    for key, reason in bad.items():
        letters = [default_codec().decode(s.value)[1] for s in tap.records(key, topics.DLQ)]
        assert {letter["reden"] for letter in letters} == {reason}, key
        assert {letter["bron_topic"] for letter in letters} == {topics.VERSTREKKINGEN}
        (source,) = tap.records(key, topics.VERSTREKKINGEN)
        assert {letter["bron_offset"] for letter in letters} == {source.offset}
        assert {letter["waarde"] for letter in letters} == {source.value}

    # A new consumer group reads the whole topic again: not one row more.
    inserted = sample_value("ketenbus_register_rows_inserted_total")
    skipped = sample_value("ketenbus_register_duplicates_skipped_total")
    started = time.monotonic()
    with sink_thread(sink_settings(broker.bootstrap, schema)):
        eventually(
            lambda: sample_value("ketenbus_register_duplicates_skipped_total") - skipped >= len(expected),
            60,
            "the replay to pass every record",
            0.1,
        )
    replay_s = time.monotonic() - started
    assert sample_value("ketenbus_register_rows_inserted_total") == inserted
    assert count_rows(schema) == len(expected)
    print(f"\nregister: {len(expected)} disclosures, killed at {at_kill}; replay pass {replay_s:.1f} s")


# -- inzage -------------------------------------------------------------------------------------


def inzage_cli(settings: Settings, ref: str, fmt: str) -> subprocess.CompletedProcess[str]:
    """`ketenbus inzage` as a person's request is answered: a process of its own."""
    env = {**os.environ, "KETENBUS_PG_DSN": settings.pg_dsn, "KETENBUS_PG_SCHEMA": settings.pg_schema}
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "inzage", ref, "--format", fmt],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of `render_table`'s output, cut at the columns its dashed rule marks."""
    lines = text.splitlines()
    rule_at = next(i for i, line in enumerate(lines) if line.startswith("---"))
    rule = lines[rule_at]
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = [lines[rule_at - 1][a:b].strip() for a, b in bounds]
    return [
        dict(zip(names, (line[a:b].strip() for a, b in bounds), strict=True)) for line in lines[rule_at + 1 :]
    ]


def assert_inzage_matches(settings: Settings, ref: str, on_topic: dict[str, dict[str, Any]]) -> None:
    """`ketenbus inzage` for `ref`, in both formats, against the topic's records about `ref`."""
    about = sorted(
        (v for v in on_topic.values() if ref in v["persoon_refs"]),
        key=lambda v: (v["tijdstip"], v["ontvanger"], v["verstrekking_id"]),
    )
    assert about, "nothing on the topic about this person: the comparison would prove nothing"

    done = inzage_cli(settings, ref, "json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["persoon_ref"] == ref and answer["count"] == len(about)
    got = answer["verstrekkingen"]
    assert Counter(
        (g["event_id"], g["ontvanger"], tuple(g["velden"]), g["grondslag"], g["doel"]) for g in got
    ) == Counter(disclosure_key(v) for v in about)
    assert [dt.datetime.fromisoformat(g["tijdstip"]) for g in got] == [v["tijdstip"] for v in about]
    assert [g["event_type"] for g in got] == [v["event_type"] for v in about]
    others = {p for v in about for p in v["persoon_refs"]} - {ref}
    assert not [p for p in others if p in done.stdout], "the answer names other persons"

    done = inzage_cli(settings, ref, "table")
    assert done.returncode == 0, done.stderr
    head = done.stdout.splitlines()[0]
    assert ref in head and f"{len(about)} disclosure(s)" in head
    table = parse_table(done.stdout)
    assert Counter(
        (r["ontvanger"], r["event_type"], r["velden"], r["grondslag"], r["doel"]) for r in table
    ) == Counter(
        (v["ontvanger"], v["event_type"], ", ".join(v["velden"]), v["grondslag"], v["doel"]) for v in about
    )
    # the table shows whole seconds, in Amsterdam time
    assert [dt.datetime.fromisoformat(r["tijdstip"]) for r in table] == [
        v["tijdstip"].replace(microsecond=0) for v in about
    ]


def test_inzage_for_a_person_matches_the_topic(
    router, publisher: Publisher, tap: Tap, broker: EmbeddedBroker, schema: str
) -> None:
    person = f"{MARKER}-inzage-{uuid.uuid4().hex[:8]}"
    zaken = [case_ref("INZ") for _ in range(3)]
    events = [
        ("politie", "Zsm", "zaak_aangemeld", zaken[0], "pleger"),
        ("gemeente", "Huisverbod", "opgelegd", zaken[1], "pleger"),
        ("politie", "Actieoverleg", "aangevraagd", zaken[1], "pleger"),
        ("politie", "Zsm", "zaak_aangemeld", zaken[2], None),  # about others only
    ]
    for partner, fam, step, zaak, role in events:
        persons = [{"persoon_ref": f"{MARKER}-ander-{zaak}", "rol": "slachtoffer", "minderjarig": False}]
        if role:
            persons.append({"persoon_ref": person, "rol": role, "minderjarig": False})
        publisher.event(partner, fam, sample(fam, step, zaak, persoon_refs=persons), wait=False)
    publisher.flush()
    expected_counts = {zaken[0]: 4, zaken[1]: 5, zaken[2]: 4}
    tap.wait(
        lambda t: all(len(t.records(z, topics.VERSTREKKINGEN)) >= n for z, n in expected_counts.items()),
        timeout=30,
        message="the disclosures of the three cases",
    )
    tap.sync()
    on_topic = verstrekkingen_on_topic(tap.records(topic=topics.VERSTREKKINGEN))
    ours = {vid for vid, v in on_topic.items() if v["zaak_ref"] in zaken}
    assert len(ours) == sum(expected_counts.values())

    settings = sink_settings(broker.bootstrap, schema)
    with sink_thread(settings):
        eventually(lambda: set(registered(schema)) >= ours, 60, "the register to hold the cases", 0.1)
    assert_inzage_matches(settings, person, on_topic)


def test_inzage_without_disclosures_and_without_register(schema: str, capsys) -> None:
    settings = Settings(pg_schema=schema)
    assert inzage.run("P-onbekend", "table", settings) == 1
    assert "no register in schema" in capsys.readouterr().err

    with db() as conn:
        register.migrate(conn, schema)
    assert inzage.run("P-onbekend", "table", settings) == 0
    assert capsys.readouterr().out == "inzage P-onbekend: no disclosures registered for P-onbekend\n"
    assert inzage.run("P-onbekend", "json", settings) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["count"] == 0
    assert "no disclosures registered for P-onbekend" in out.err


def test_inzage_for_a_demo_person_matches_the_topic(schema: str) -> None:
    from connectors.demo import simulate

    with EmbeddedBroker() as own:
        summary = simulate(cases=3, seed=3, bootstrap=own.bootstrap, quiet=True)
        assert summary.breaches == [] and summary.verstrekkingen > 0
        reader = Reader(own.bootstrap, [topics.VERSTREKKINGEN])
        on_topic = verstrekkingen_on_topic(reader.drain())
        reader.close()
        assert len(on_topic) == summary.verstrekkingen

        settings = sink_settings(own.bootstrap, schema)
        with sink_thread(settings):
            eventually(lambda: count_rows(schema) >= len(on_topic), 60, "the register to hold the demo", 0.1)
    per_person = Counter(p for v in on_topic.values() for p in v["persoon_refs"])
    person, n = per_person.most_common(1)[0]
    assert n > 1
    assert_inzage_matches(settings, person, on_topic)
