"""The disclosure register sink: `keten.verstrekkingen` → PostgreSQL, one row per disclosure.

Each poll batch is written in one database transaction (rows already there are skipped), and
only then are the Kafka offsets committed: at least once from the topic, idempotent on
`verstrekking_id`, so a sink killed between the two commits still leaves exactly one row per
disclosure. The sink creates and upgrades its own tables (`MIGRATIONS`) when it starts.
`connectors.inzage` reads the table to answer an AVG art. 15 request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import Counter, Histogram
from psycopg import sql

from schemas.codec import Codec, CodecError, default_codec
from streams import lag, metrics, topics
from streams.router import InRecord, Router

if TYPE_CHECKING:
    from kafka.consumer.fetcher import ConsumerRecord

    from streams.settings import Settings

log = logging.getLogger("connectors.register")  # also when run as __main__

TABLE = "verstrekkingen"
DEFAULT_BATCH = 500
MAX_BACKOFF_S = 10.0
NOT_VERSTREKKING = "register.not_verstrekking"
REFUSED_BY_DATABASE = "register.refused_by_database"

ROWS_INSERTED = Counter("ketenbus_register_rows_inserted_total", "Disclosures written to the register.")
DUPLICATES = Counter(
    "ketenbus_register_duplicates_skipped_total",
    "Verstrekking records skipped because their id was registered already (redelivery).",
)
REJECTED = Counter(
    "ketenbus_register_rejected_total",
    "Records on keten.verstrekkingen the register could not take, sent to keten.dlq, by reason.",
    ["reason"],
)
WRITE_ERRORS = Counter(
    "ketenbus_register_write_errors_total",
    "Failed attempts to store a batch (database or broker unavailable); the batch is retried.",
    ["error"],
)
BATCH_SECONDS = Histogram(
    "ketenbus_register_batch_seconds",
    "From a batch polled to its offsets committed: decode, insert, database commit, Kafka commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# -- migrations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One step of the register's schema. Statements are templates: `{schema}` is replaced by
    the quoted schema name. Never edit a released migration; append a new one."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "disclosure register",
        (
            "CREATE SCHEMA IF NOT EXISTS {schema}",
            """CREATE TABLE {schema}.verstrekkingen (
                verstrekking_id text PRIMARY KEY,
                event_id text NOT NULL,
                event_type text NOT NULL,
                zaak_ref text NOT NULL,
                persoon_refs text[] NOT NULL,
                ontvanger text NOT NULL,
                velden text[] NOT NULL,
                regel text NOT NULL,
                grondslag text NOT NULL,
                doel text NOT NULL,
                policy_versie text NOT NULL,
                tijdstip timestamptz NOT NULL,
                kafka_topic text NOT NULL,
                kafka_partition integer NOT NULL,
                kafka_offset bigint NOT NULL,
                registered_at timestamptz NOT NULL DEFAULT now()
            )""",
            # inzage: every disclosure about one person (persoon_refs @> ARRAY[ref])
            "CREATE INDEX verstrekkingen_persoon_refs ON {schema}.verstrekkingen USING gin (persoon_refs)",
            "CREATE INDEX verstrekkingen_zaak_ref ON {schema}.verstrekkingen (zaak_ref)",
        ),
    ),
)


def _render(template: str, schema: str) -> sql.Composed:
    return sql.SQL(template).format(schema=sql.Identifier(schema))


def migrate(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """Apply the migrations `schema` lacks, in order, in one transaction; returns the versions
    applied. An advisory lock per schema makes sinks that start together take turns."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ketenbus.register/{schema}",)
        )
        # The version table must exist before it can say which migrations are missing.
        conn.execute(_render("CREATE SCHEMA IF NOT EXISTS {schema}", schema))
        conn.execute(
            _render(
                "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
        )
        rows = conn.execute(_render("SELECT version FROM {schema}.schema_migrations", schema)).fetchall()
        done = {int(r[0]) for r in rows}
        for m in sorted(MIGRATIONS, key=lambda m: m.version):
            if m.version in done:
                continue
            for statement in m.statements:
                conn.execute(_render(statement, schema))
            conn.execute(
                _render("INSERT INTO {schema}.schema_migrations (version) VALUES (%s)", schema), (m.version,)
            )
            applied.append(m.version)
    if applied:
        log.info("register migrated", extra={"schema": schema, "versions": applied})
    return applied


# -- writing rows -------------------------------------------------------------------------------

COLUMNS = (
    "verstrekking_id",
    "event_id",
    "event_type",
    "zaak_ref",
    "persoon_refs",
    "ontvanger",
    "velden",
    "regel",
    "grondslag",
    "doel",
    "policy_versie",
    "tijdstip",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
_STAGING = "register_batch"


@dataclass(frozen=True)
class Disclosure:
    """One decoded Verstrekking record and where it was read, as a register row."""

    values: tuple[Any, ...]  # in COLUMNS order
    source: ConsumerRecord


def to_row(record: dict[str, Any], topic: str, partition: int, offset: int) -> tuple[Any, ...]:
    return (
        record["verstrekking_id"],
        record["event_id"],
        record["event_type"],
        record["zaak_ref"],
        list(record["persoon_refs"]),
        record["ontvanger"],
        list(record["velden"]),
        record["regel"],
        record["grondslag"],
        record["doel"],
        record["policy_versie"],
        record["tijdstip"],
        topic,
        partition,
        offset,
    )


def prepare(conn: psycopg.Connection[Any], schema: str) -> None:
    """The session's staging table that batches are copied into (emptied at every commit)."""
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        ).format(staging=sql.Identifier(_STAGING), table=sql.Identifier(schema, TABLE))
    )


def write(
    conn: psycopg.Connection[Any], schema: str, rows: Sequence[Disclosure]
) -> tuple[int, list[Disclosure]]:
    """Store `rows`, skipping ids already registered, in one transaction; returns (rows
    inserted, rows the database refused). Needs `prepare` on the connection first."""
    if not rows:
        return 0, []
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    try:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(_STAGING), cols)) as copy:
                for row in rows:
                    copy.write_row(row.values)
            # Id order: two sinks overlapping during a rebalance lock rows in the same order.
            cur.execute(
                sql.SQL(
                    "INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} "
                    "ORDER BY verstrekking_id, kafka_partition, kafka_offset "
                    "ON CONFLICT (verstrekking_id) DO NOTHING"
                ).format(table=sql.Identifier(schema, TABLE), cols=cols, staging=sql.Identifier(_STAGING))
            )
            return cur.rowcount, []
    except psycopg.DataError:
        pass
    # A value the database cannot hold (a NUL in a text, say) must not hold up the rest of the
    # batch: row by row, each in its own savepoint, refusing only the rows that fail.
    insert_one = sql.SQL("INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT DO NOTHING").format(
        table=sql.Identifier(schema, TABLE),
        cols=cols,
        params=sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)),
    )
    inserted, refused = 0, []
    with conn.transaction():
        for row in rows:
            try:
                with conn.transaction():
                    inserted += conn.execute(insert_one, row.values).rowcount
            except psycopg.DataError:
                refused.append(row)
    return inserted, refused


# -- the sink -----------------------------------------------------------------------------------


def group_id(app_id: str) -> str:
    return f"{app_id}-register"


class RegisterError(RuntimeError):
    pass


@dataclass
class Rejected:
    """A record the register cannot take, and why (a reason code, a detail without values)."""

    source: ConsumerRecord
    reason: str
    detail: str


class Sink:
    """Consumer, DLQ producer and database connection of one running register sink."""

    def __init__(
        self, settings: Settings, batch_size: int = DEFAULT_BATCH, codec: Codec | None = None
    ) -> None:
        if not settings.bootstrap:
            raise RegisterError("the register sink reads a running bus: set KETENBUS_BOOTSTRAP")
        self.settings = settings
        self.schema = settings.pg_schema
        self.batch_size = batch_size
        self.codec = codec or default_codec()
        self.group = group_id(settings.app_id)
        self.conn: psycopg.Connection[Any] | None = None
        self.inserted = 0
        self.duplicates = 0
        self.rejected = 0
        self._consumer: Any = None
        self._producer: Any = None

    # connections ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            conn = psycopg.connect(
                self.settings.pg_dsn, autocommit=True, application_name="ketenbus-register"
            )
            try:
                migrate(conn, self.schema)
                prepare(conn, self.schema)
            except BaseException:
                conn.close()
                raise
            self.conn = conn
        return self.conn

    def _drop_connection(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _kafka(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        s = self.settings
        client = lag.client_kwargs(s)
        self._consumer = KafkaConsumer(
            topics.VERSTREKKINGEN,
            bootstrap_servers=s.bootstrap,
            client_id="ketenbus-register",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            fetch_max_wait_ms=100,
            # Short group timeouts: the embedded broker joins a group only after the poll interval.
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
            max_poll_interval_ms=int(s.max_poll_interval_s * 1000),
            **client,
        )
        self._producer = KafkaProducer(
            bootstrap_servers=s.bootstrap, client_id="ketenbus-register", acks="all", linger_ms=5, **client
        )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
        if self._producer is not None:
            self._producer.close(timeout=10)
        self._drop_connection()

    # the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if not self._retrying(stop, self._connect):
            return  # asked to stop before the database was reachable
        self._kafka()
        reporter = lag.start_lag_reporter(
            str(self.settings.bootstrap), [self.group], **lag.client_kwargs(self.settings)
        )
        log.info("register sink started", extra={"group": self.group, "schema": self.schema})
        try:
            while not stop.is_set():
                polled = self._consumer.poll(timeout_ms=200, max_records=self.batch_size)
                records = [m for batch in polled.values() for m in batch]
                if not records:
                    continue
                started = time.perf_counter()
                if not self._retrying(stop, functools.partial(self.store, records)):
                    break  # stopping: nothing committed, the batch is read again next time
                self._commit(records)
                BATCH_SECONDS.observe(time.perf_counter() - started)
        finally:
            reporter.stop()
            log.info(
                "register sink stopped",
                extra={"inserted": self.inserted, "duplicates": self.duplicates, "rejected": self.rejected},
            )

    def _retrying(self, stop: threading.Event, attempt: Callable[[], object]) -> bool:
        """Run `attempt` until it succeeds (True) or `stop` is set (False). Only unavailability
        is retried: a database or broker that went away comes back; a bug does not."""
        from kafka.errors import KafkaError

        delay = 0.25
        while not stop.is_set():
            try:
                attempt()
                return True
            except (psycopg.OperationalError, psycopg.InterfaceError, KafkaError) as exc:
                WRITE_ERRORS.labels(type(exc).__name__).inc()
                log.warning(
                    "register unavailable, retrying", extra={"error": type(exc).__name__, "retry_in_s": delay}
                )
                if isinstance(exc, psycopg.Error):
                    self._drop_connection()
                stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        return False

    def store(self, records: Sequence[ConsumerRecord]) -> None:
        """Decode and write one batch; dead-letter what cannot be registered."""
        rows, rejected = self.decode(records)
        inserted, refused = write(self._connect(), self.schema, rows)
        rejected += [
            Rejected(r.source, REFUSED_BY_DATABASE, "a value the database cannot store") for r in refused
        ]
        self.dead_letter(rejected)
        stored = len(rows) - len(refused)
        ROWS_INSERTED.inc(inserted)
        DUPLICATES.inc(stored - inserted)
        self.inserted += inserted
        self.duplicates += stored - inserted

    def decode(self, records: Iterable[ConsumerRecord]) -> tuple[list[Disclosure], list[Rejected]]:
        rows: list[Disclosure] = []
        rejected: list[Rejected] = []
        for m in records:
            try:
                fam, record = self.codec.decode(m.value or b"")
            except CodecError as exc:
                rejected.append(Rejected(m, exc.reason, exc.detail))
                continue
            if fam.name != "Verstrekking":
                rejected.append(Rejected(m, NOT_VERSTREKKING, f"a {fam.name} record"))
                continue
            rows.append(Disclosure(to_row(record, m.topic, m.partition, m.offset), m))
        return rows, rejected

    def dead_letter(self, rejected: Sequence[Rejected]) -> None:
        """To keten.dlq, acknowledged, before the offsets move past them: nothing is lost."""
        if not rejected:
            return
        now = dt.datetime.now(dt.UTC)
        futures = []
        for r in rejected:
            m = r.source
            rec = InRecord(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or ()))
            out = Router.dead_letter_record(self.codec, rec, r.reason, r.detail, now)
            futures.append(self._producer.send(out.topic, key=out.key, value=out.value, headers=out.headers))
            log.warning(
                "dead-lettered",
                extra={"reason": r.reason, "topic": m.topic, "partition": m.partition, "offset": m.offset},
            )
        for f in futures:
            f.get(timeout=30)
        for r in rejected:
            REJECTED.labels(r.reason).inc()
            metrics.DLQ.labels(r.reason).inc()
        self.rejected += len(rejected)

    def _commit(self, records: Sequence[ConsumerRecord]) -> None:
        from kafka import TopicPartition
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        ends: dict[TopicPartition, int] = {}
        for m in records:
            tp = TopicPartition(m.topic, m.partition)
            ends[tp] = max(ends.get(tp, 0), m.offset + 1)
        try:
            self._consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
        except KafkaError as exc:
            # The rows are stored: the batch is read again after the rebalance and skipped.
            log.warning("offsets not committed", extra={"error": type(exc).__name__})


def run(settings: Settings, stop: threading.Event, *, batch_size: int = DEFAULT_BATCH) -> None:
    """Run the sink until `stop` is set."""
    sink = Sink(settings, batch_size)
    try:
        sink.run(stop)
    finally:
        sink.close()


def main(settings: Settings, *, batch_size: int = DEFAULT_BATCH, metrics_port: int | None = None) -> int:
    """Run the sink in the foreground until SIGINT or SIGTERM."""
    import signal

    from streams import logs

    if not settings.bootstrap:
        print("ketenbus register: give KETENBUS_BOOTSTRAP, the bus to read", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    port = metrics.serve(
        settings.metrics_port if metrics_port is None else metrics_port, settings.metrics_addr
    )
    print(f"ketenbus register: metrics=http://{settings.metrics_addr}:{port}/metrics", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop, batch_size=batch_size)
    return 0


if __name__ == "__main__":
    from streams.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m connectors.register", description=__doc__)
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help="records per poll and transaction"
    )
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args()
    sys.exit(main(Settings(), batch_size=args.batch_size, metrics_port=args.metrics_port))
