"""Throughput of the router, run as an operator runs it, against a plain aiokafka relay.

The inboxes of an embedded broker are filled with `events` valid partner events first (a fixed,
seeded mix of Huisverbod.opgelegd, Zsm.zaak_aangemeld, SlachtofferdeviceAlert.alarm,
Actieoverleg.gehouden and Zsm.beslissing with realistic values; every event its own case and
ce_id). Then `ketenbus up --roles router` starts in a subprocess and works off the backlog. The
clock starts when the first record appears on `keten.events` (so the consumer-group join, about a
poll interval on the embedded broker, is left out) and stops when `keten.events` holds every
event; the outboxes and `keten.verstrekkingen` are timed too. Progress is read from end offsets
(`KafkaConsumer.end_offsets`, every `POLL_S`), not by consuming the output: only the last record
batch of each partition is read, when the output stops growing, because the embedded broker
reports end offsets short (see `_exact_ends`).

The baseline is the practical upper limit: a second embedded broker, started and pre-filled the
same way, and a relay in a subprocess that does nothing but move bytes. `AIOKafkaConsumer.getmany`
on the same inboxes, per input record the same number of records the router writes (1 to
`keten.events`, k to outboxes, k to `keten.verstrekkingen`, k the router's measured fan-out,
rounded), `AIOKafkaProducer.send`, awaiting every future of the batch, then a commit. Both are
timed by the same poller in the same way.

If the output stops growing for `STALL_S` with work left, the run fails (`Stalled`) and says how
far it got: faust-streaming, which ran the router before, could leave its group mid-backlog and
never come back.

`others_cpu_pct` is the CPU everything else on the machine used meanwhile (other sessions, the
kernel): when it is high, the figures are low.

Run as `python -m bench.router_bench relay BOOTSTRAP FANOUT BATCH GROUP` it is that relay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from schemas import Envelope, default_codec
from schemas.registry import PARTNERS, family
from streams import topics
from streams.broker import stop_process

NAME = "router"
EVENTS = 30_000
SEED = 20260302
SIGNALEN = ("verwurging", "scheiding", "doodsbedreiging", "aanhoudende_stalking")
PARTITIONS = 3
REPEATS = 2  # best of; one run of each side takes about 35 s on a 2-core machine
POLL_S = 0.02
STABLE_S = 1.0  # no growth for this long: read the real end offsets
STALL_S = 20.0  # no growth for this long, work left: the worker stalled
TIMEOUT_S = 300.0
REPO = Path(__file__).resolve().parent.parent

#: (family, step, producing partner): released to 2, 3-4, 2, 3 and 3-4 partners.
MIX: tuple[tuple[str, str, str], ...] = (
    ("Huisverbod", "opgelegd", "gemeente"),
    ("Zsm", "zaak_aangemeld", "politie"),
    ("SlachtofferdeviceAlert", "alarm", "alarmcentrale"),
    ("Actieoverleg", "gehouden", "politie"),
    ("Zsm", "beslissing", "om"),
)
MINOR_SHARE = 0.75  # cases with a minor involved: Zsm goes to the Raad as well
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
STREETS = ("Dorpsstraat", "Kerkweg", "Stationsplein", "Molenlaan", "Schoolstraat", "Julianastraat")
PLACES = (("3511", "Utrecht"), ("1012", "Amsterdam"), ("9711", "Groningen"), ("5611", "Eindhoven"))


def _log(message: str) -> None:
    print(f"  [router bench] {message}", file=sys.stderr, flush=True)


# -- the input ---------------------------------------------------------------------------------


def _address(rng: random.Random) -> str:
    code, place = rng.choice(PLACES)
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in range(2))
    return f"{rng.choice(STREETS)} {rng.randint(1, 250)}, {code} {letters} {place}"


def _datum(fam_name: str, step: str, zaak: str, when: dt.datetime, rng: random.Random) -> dict[str, Any]:
    """A complete, valid datum with realistic values (pseudonym hashes, addresses, ids)."""
    minor = rng.random() < MINOR_SHARE
    persons = [
        {"persoon_ref": f"{rng.getrandbits(256):064x}", "rol": "slachtoffer", "minderjarig": False},
        {"persoon_ref": f"{rng.getrandbits(256):064x}", "rol": "pleger", "minderjarig": False},
    ]
    for _ in range(rng.randint(1, 2) if minor else 0):
        persons.append({"persoon_ref": f"{rng.getrandbits(256):064x}", "rol": "kind", "minderjarig": True})
    values: dict[str, Any] = {
        "stap": step,
        "zaak_ref": zaak,
        "tijdstip": when,
        "persoon_refs": persons,
        "signalen": rng.sample(SIGNALEN, rng.randint(0, 2)),
        "vormen_van_geweld": ["partnergeweld"] + (["kindermishandeling"] if minor else []),
        "schadelijke_praktijk": False,
        "risicotaxatie_vastgelegd": rng.random() < 0.5,
        "minderjarigen_betrokken": minor,
        "woonadres": _address(rng),
        # Huisverbod
        "ingangsdatum": when,
        "einddatum": when + dt.timedelta(days=10),
        "pleger_meerderjarig": True,
        "contactadres": _address(rng),
        # Zsm
        "advies_van": "reclassering",
        "advies": "toezicht_reclassering",
        "beslissing": rng.choice(["voorwaardelijk_sepot", "dagvaarden", "strafbeschikking"]),
        "bijzondere_voorwaarden": ["contactverbod", "enkelband"][: rng.randint(0, 2)],
        # SlachtofferdeviceAlert
        "alarm_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "soort": "noodknop",
        "locatie": {
            "lat": round(rng.uniform(50.75, 53.55), 6),
            "lon": round(rng.uniform(3.35, 7.22), 6),
            "nauwkeurigheid_m": rng.randrange(3, 50),
        },
        "afstand_m": rng.randrange(0, 5000),
        "bevestigd_door": "politie",
        # Actieoverleg
        "deelnemers": ["politie", "veilig_thuis", "om", "raad"],
        "besluiten": [
            {
                "besluit_id": (bid := str(uuid.UUID(int=rng.getrandbits(128), version=4))),
                "soort": "veiligheidsplan",
                "eigenaar": "veilig_thuis",
                "uiterlijk": when + dt.timedelta(days=14),
            }
        ],
        "besluit_id": bid,
    }
    fam = family(fam_name)
    return {name: value for name, value in values.items() if name in fam.field_names}


@dataclass(frozen=True)
class Input:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    recipients: int  # what the policy releases it to: the outbox records it must cause


def make_inputs(
    n: int, seed: int = SEED, mix: Sequence[tuple[str, str, str]] = MIX, when: dt.datetime = T0
) -> list[Input]:
    """`n` encoded inbox records of `mix` (in turn), deterministic apart from the ce_ids (uuid4,
    unique) and the case references; event `i` happens `when` + 37 ms * i."""
    from streams import policy
    from streams.settings import Settings

    rng = random.Random(seed)
    codec = default_codec()
    pol = policy.load(Settings().policy_file)
    tag = uuid.uuid4().hex[:8]
    out = []
    for i in range(n):
        fam_name, step, partner = mix[i % len(mix)]
        fam = family(fam_name)
        zaak = f"ZAAK-2026-{i:06d}-{tag}"
        at = when + dt.timedelta(milliseconds=i * 37)
        datum = _datum(fam_name, step, zaak, at, rng)
        ce_type = fam.ce_type(step)
        env = Envelope.new(partner, ce_type, zaak, at)
        decisions = pol.decide(fam, ce_type, datum, [p for p in PARTNERS if p != partner])
        released = sum(1 for d in decisions.values() if d.allowed)
        value = codec.encode(fam_name, datum)
        out.append(Input(topics.inbox(partner), zaak.encode(), value, env.to_headers(), released))
    return out


def prefill(bootstrap: str, inputs: Sequence[Input]) -> float:
    """Write `inputs` to their inboxes and wait for every acknowledgement; returns seconds."""
    from kafka import KafkaProducer

    start = time.perf_counter()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024, max_request_size=4 << 20
    )
    try:
        for rec in inputs:
            producer.send(rec.topic, key=rec.key, value=rec.value, headers=rec.headers)
        producer.flush(120)
    finally:
        producer.close(10)
    return time.perf_counter() - start


# -- measuring ----------------------------------------------------------------------------------


def _machine_busy_seconds() -> float:
    """CPU time all processes spent, summed over the cores, from /proc/stat (Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (Linux), 0.0 elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    first_s: float  # since polling started: the first record seen on keten.events
    first_count: int  # keten.events records already there at that poll
    first_outputs: int  # outbox and register records already there at that poll
    events_s: float  # keten.events complete
    outboxes_s: float  # every outbox record written
    register_s: float  # every verstrekking written
    events_records: int
    outbox_records: int
    register_records: int
    worker_cpu_s: float  # CPU time of the worker process from the first record to keten.events complete
    broker_cpu_s: float
    others_cpu_s: float  # everything else on the machine, but this process: contention

    def window(self, done_s: float) -> float:
        return done_s - self.first_s


class Stalled(RuntimeError):
    """The worker stopped writing with work left; `timing` covers what it did until then."""

    def __init__(self, timing: Timing, expected: dict[str, int]) -> None:
        super().__init__(
            f"stalled for {STALL_S:.0f} s at {timing.events_records:,} of {expected['events']:,} events"
        )
        self.timing = timing


def _exact_ends(reader: Any, reported: dict[Any, int]) -> dict[Any, int]:
    """The real end offsets, from reported ones that may be short.

    The embedded broker (Tansu) reports a partition's end offset as the base offset of its
    last record batch + 1, not the last offset + 1: short by the size of that batch - 1. So
    read the batch at `reported - 1`; its last record gives the end. On a broker that reports
    the real end the same read returns just the last record, and the same number.
    """
    ends = dict(reported)
    pending = {tp for tp, end in reported.items() if end > 0}
    if not pending:
        return ends
    reader.assign(sorted(pending))
    for tp in pending:
        reader.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:
        for tp, records in reader.poll(timeout_ms=200, max_records=1_000_000).items():
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
                pending.discard(tp)
    if pending:
        raise RuntimeError(f"could not read the last batch of {sorted(pending)}")
    return ends


def watch(
    bootstrap: str,
    expected: dict[str, int],
    alive: Callable[[], bool],
    worker_pid: int,
    broker_pid: int | None,
) -> Timing:
    """Time a worker writing `expected` records to keten.events, the outboxes and the register.

    Polls end offsets every `POLL_S` and notes when each group of topics last grew. When nothing
    grew for `STABLE_S`, it reads the real ends (see `_exact_ends`); once they reach `expected`,
    a group was complete at the poll where it last grew.
    """
    from kafka import KafkaConsumer, TopicPartition

    groups = {
        "events": (topics.EVENTS,),
        "outboxes": topics.OUTBOXES,
        "register": (topics.VERSTREKKINGEN,),
        "dlq": (topics.DLQ,),
    }
    offsets = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = {
            group: [
                TopicPartition(t, p) for t in names for p in sorted(offsets.partitions_for_topic(t) or ())
            ]
            for group, names in groups.items()
        }
        every = [tp for group in tps.values() for tp in group]
        start = time.perf_counter()
        first: tuple[float, int, int] | None = None
        last = {group: -1 for group in groups}
        grew = {group: 0.0 for group in groups}
        cpu_at_grew = cpu0 = (0.0, 0.0, 0.0, 0.0)
        checked = -1.0  # the growth the last exact read was made after
        timing: Timing | None = None  # as of the last exact read
        while True:
            now = time.perf_counter() - start
            ends = offsets.end_offsets(every)
            cpu = (
                _cpu_seconds(worker_pid),
                _cpu_seconds(broker_pid) if broker_pid else 0.0,
                _machine_busy_seconds(),
                _own_seconds(),
            )
            for group, group_tps in tps.items():
                count = sum(ends[tp] for tp in group_tps)
                if count != last[group]:
                    last[group], grew[group] = count, now
                    if group == "events":
                        cpu_at_grew = cpu
            if last["dlq"] > 0:
                raise RuntimeError(f"{last['dlq']} record(s) dead-lettered: the input is not valid")
            if first is None and last["events"] > 0:
                exact = _exact_ends(reader, {tp: ends[tp] for tp in every})
                outputs = sum(exact[tp] for tp in (*tps["outboxes"], *tps["register"]))
                first, cpu0 = (now, sum(exact[tp] for tp in tps["events"]), outputs), cpu
                _log(f"first record on {topics.EVENTS} after {now:.1f} s ({first[1]} there)")
            latest = max(grew["events"], grew["outboxes"], grew["register"])
            if first is not None and now - latest >= STABLE_S and checked < latest:
                checked = latest
                exact = _exact_ends(reader, {tp: ends[tp] for tp in every})
                count = {group: sum(exact[tp] for tp in group_tps) for group, group_tps in tps.items()}
                timing = Timing(
                    first_s=first[0],
                    first_count=first[1],
                    first_outputs=first[2],
                    events_s=grew["events"],
                    outboxes_s=grew["outboxes"],
                    register_s=grew["register"],
                    events_records=count["events"],
                    outbox_records=count["outboxes"],
                    register_records=count["register"],
                    worker_cpu_s=cpu_at_grew[0] - cpu0[0],
                    broker_cpu_s=cpu_at_grew[1] - cpu0[1],
                    others_cpu_s=(cpu_at_grew[2] - cpu0[2])
                    - sum(cpu_at_grew[i] - cpu0[i] for i in (0, 1, 3)),
                )
                if all(count[group] >= expected[group] for group in expected):
                    return timing
                _log(f"progress: {', '.join(f'{g} {count[g]:,}/{expected[g]:,}' for g in expected)}")
            if timing is not None and now - latest >= STALL_S:
                raise Stalled(timing, expected)
            if not alive():
                raise RuntimeError("the worker process ended before the work was done")
            if now > TIMEOUT_S:
                raise RuntimeError(f"timed out after {TIMEOUT_S:.0f} s; end offsets as reported: {last}")
            time.sleep(POLL_S)
    finally:
        reader.close()
        offsets.close()


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    stop_process(proc, timeout)


def _tail(path: Path, lines: int = 8) -> str:
    """The last distinct lines of a worker's log, shortened."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    distinct = list(dict.fromkeys(line[:300] for line in text if line.strip()))
    return "\n".join(f"    {line}" for line in distinct[-lines:])


def _measure(
    label: str,
    inputs: Sequence[Input],
    command: Callable[[str], list[str]],
    env: dict[str, str],
    expected: dict[str, int],
    logdir: Path,
) -> Timing:
    """A fresh embedded broker, pre-filled; then the worker `command(bootstrap)`, timed."""
    from streams.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        topics.provision(broker.bootstrap, PARTITIONS)
        fill_s = prefill(broker.bootstrap, inputs)
        _log(f"{label}: {len(inputs):,} events in the inboxes in {fill_s:.1f} s; starting the worker")
        log_path = logdir / f"{label}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                command(broker.bootstrap),
                cwd=REPO,
                env={**os.environ, **env, "KETENBUS_BOOTSTRAP": broker.bootstrap},
                stdout=out,
                stderr=out,
            )
        broker_proc = getattr(broker, "_proc", None)  # for its CPU time only
        try:
            timing = watch(
                broker.bootstrap,
                expected,
                alive=lambda: proc.poll() is None,
                worker_pid=proc.pid,
                broker_pid=broker_proc.pid if broker_proc is not None else None,
            )
        except Exception:
            _log(f"{label} failed; the end of its log:\n{_tail(log_path)}")
            raise
        finally:
            _stop(proc)
        counted = len(inputs) - timing.first_count
        seconds = timing.window(timing.events_s)
        _log(
            f"{label}: {counted:,} events in {seconds:.2f} s after the first record = "
            f"{counted / seconds:,.0f} in-events/s; outboxes done at {timing.window(timing.outboxes_s):.2f} s"
        )
        return timing


def _run_router(
    label: str, inputs: Sequence[Input], expected: dict[str, int], logdir: Path, env: dict[str, str]
) -> Timing:
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    return _measure(label, inputs, _router_command, {"KETENBUS_APP_ID": app_id, **env}, expected, logdir)


def _router_command(bootstrap: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", "up", "--roles", "router", "--metrics-port", "0"]


def _relay_command(bootstrap: str, fanout: int, batch: int) -> list[str]:
    group = f"bench-relay-{uuid.uuid4().hex[:8]}"
    module = "bench.router_bench"
    return [sys.executable, "-m", module, "relay", bootstrap, str(fanout), str(batch), group]


def _route_only_rate(inputs: Sequence[Input], n: int = 3000, repeats: int = 3) -> float:
    """In-events/s of `Router.route_batch` alone, in this process: no Kafka, no Faust (best of
    `repeats`, batches of 2000 like the router's)."""
    from streams import policy
    from streams.router import InRecord, Router, SeenIds
    from streams.settings import Settings

    router = Router(policy.load(Settings().policy_file))
    batch = [InRecord(rec.topic, 0, i, rec.key, rec.value, rec.headers) for i, rec in enumerate(inputs[:n])]
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        router.seen = SeenIds()
        start = time.perf_counter()
        for i in range(0, len(batch), 2000):
            router.route_batch(batch[i : i + 2000])
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def _rates(timing: Timing) -> dict[str, Any]:
    """Rates over what was written after the first poll that saw a record on keten.events."""
    n = timing.events_records
    events_window = timing.window(timing.events_s)
    all_window = timing.window(max(timing.events_s, timing.outboxes_s, timing.register_s))
    outputs = timing.events_records + timing.outbox_records + timing.register_records
    first_outputs = timing.first_count + timing.first_outputs
    return {
        "in_events_per_s": round((n - timing.first_count) / events_window),
        "out_records_per_s": round(timing.outbox_records * (n - timing.first_count) / n / events_window),
        "all_records_per_s": round((outputs - first_outputs) / all_window),
        "seconds": round(events_window, 2),
        "all_written_s": round(all_window, 2),
        "worker_cpu_pct": round(100 * timing.worker_cpu_s / events_window),
        "broker_cpu_pct": round(100 * timing.broker_cpu_s / events_window),
        "others_cpu_pct": round(100 * max(0.0, timing.others_cpu_s) / events_window),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def run(events: int = EVENTS, seed: int = SEED, repeats: int = REPEATS) -> dict[str, Any]:
    from streams.settings import Settings

    _log(f"encoding {events:,} events")
    inputs = make_inputs(events, seed)
    sizes = sorted(len(rec.value) for rec in inputs)
    header_bytes = sum(len(k) + len(v) for k, v in inputs[0].headers)
    outbox_expected = sum(rec.recipients for rec in inputs)
    fanout = outbox_expected / events
    k = round(fanout)
    route_only = _route_only_rate(inputs)
    _log(f"predicted fan-out {fanout:.3f}; route_batch alone: {route_only:,.0f} in-events/s")

    settings = Settings()
    router_expected = {"events": events, "outboxes": outbox_expected, "register": outbox_expected}
    relay_expected = {"events": events, "outboxes": k * events, "register": k * events}
    routers: list[Timing] = []
    relays: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="ketenbus-bench-") as tmp:
        logdir = Path(tmp)
        for attempt in range(repeats):
            timing = _run_router(f"router-{attempt}", inputs, router_expected, logdir, {})
            written = (timing.events_records, timing.outbox_records, timing.register_records)
            if written != (events, outbox_expected, outbox_expected):
                raise AssertionError(
                    f"router wrote {written} (events, outbox, register) records; the policy says "
                    f"{(events, outbox_expected, outbox_expected)}"
                )
            routers.append(timing)
            relays.append(
                _measure(
                    f"relay-{attempt}",
                    inputs,
                    functools.partial(_relay_command, fanout=k, batch=settings.router_batch_size),
                    {},
                    relay_expected,
                    logdir,
                )
            )

    best = max(routers, key=lambda t: _rates(t)["in_events_per_s"])
    best_relay = max(relays, key=lambda t: _rates(t)["in_events_per_s"])
    ours, theirs = _rates(best), _rates(best_relay)
    measured_fanout = best.outbox_records / events
    return {
        "name": NAME,
        "parameters": {
            "events": events,
            "seed": seed,
            "mix": [f"{f}.{s} from {p}" for f, s, p in MIX],
            "minor_share": MINOR_SHARE,
            "value_bytes_mean": round(sum(sizes) / events, 1),
            "value_bytes_min": sizes[0],
            "value_bytes_max": sizes[-1],
            "envelope_header_bytes": header_bytes,
            "partitions": PARTITIONS,
            "router_batch_size": settings.router_batch_size,
            "relay_records_per_input": 1 + 2 * k,
            "repeats": repeats,
            "timed_from": (
                f"first record on {topics.EVENTS} (group join excluded) to {topics.EVENTS} holding every "
                f"event, by end offsets every {POLL_S} s (corrected for the embedded broker's short "
                "ones, see _exact_ends); the records already there at the first poll are not counted"
            ),
            "first_poll_records": best.first_count,
            "stall_after_s": STALL_S,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "figures": {
            "implementation": f"ketenbus up --roles router (aiokafka {_version('aiokafka')} lanes)",
            "fan_out": round(measured_fanout, 3),
            **ours,
            "route_batch_only_in_events_per_s": round(route_only),
        },
        "baseline": {
            "implementation": (
                f"aiokafka {_version('aiokafka')} relay: getmany, send 1+{k}+{k} copies, await, commit"
            ),
            "fan_out": k,
            **theirs,
        },
    }


# -- the relay ------------------------------------------------------------------------------------


async def relay(bootstrap: str, fanout: int, batch: int, group: str) -> None:
    """Copy every inbox record to keten.events, `fanout` outboxes and `fanout` times to the
    register; await the batch, commit, repeat. Runs until killed."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from streams.settings import Settings

    settings = Settings()
    consumer = AIOKafkaConsumer(
        *topics.INBOXES,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        max_poll_interval_ms=int(settings.max_poll_interval_s * 1000),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    outboxes = topics.OUTBOXES
    try:
        turn = 0
        while True:
            got = await consumer.getmany(timeout_ms=100, max_records=batch)
            futures = []
            for messages in got.values():
                for m in messages:
                    headers = list(m.headers)
                    futures.append(await producer.send(topics.EVENTS, m.value, key=m.key, headers=headers))
                    for j in range(fanout):
                        out = outboxes[(turn + j) % len(outboxes)]
                        futures.append(await producer.send(out, m.value, key=m.key, headers=headers))
                        futures.append(
                            await producer.send(topics.VERSTREKKINGEN, m.value, key=m.key, headers=headers)
                        )
                    turn += 1
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "relay":
        asyncio.run(relay(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
    else:
        print(
            "usage: python -m bench.router_bench relay BOOTSTRAP FANOUT BATCH GROUP"
            "  (or: python -m bench router)",
            file=sys.stderr,
        )
        sys.exit(2)
