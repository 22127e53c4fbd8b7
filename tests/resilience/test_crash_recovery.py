"""Under steady load, the router, then the timer worker, then the HTTP ingress are killed
(SIGKILL) at a random moment and restarted. Afterwards:

- every accepted event (acknowledged by the broker, or answered 202/200 by the ingress) reached
  every outbox the policy allows, and no outbox holds a record the policy forbids;
- every delivery has its Verstrekking;
- every pending deadline fired exactly once as seen by a receiver that drops repeated ids.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import default_codec
from schemas.envelope import header, source_for
from schemas.registry import BUS, partner_from_symbol
from streams import topics
from streams.broker import free_port, stop_process
from streams.router import InRecord
from tests.bus import REPO, IsolatedBus, Tap, isolated_bus
from tests.resilience.oracle import delivered, leaks, oracle, valid_events
from tests.samples import MARKER, sample

pytestmark = pytest.mark.integration

# `make soak` raises these through the environment (and picks its own seed).
KAFKA_EVENTS = int(os.environ.get("KETENBUS_SOAK_EVENTS", 600))
HTTP_CASES = int(os.environ.get("KETENBUS_SOAK_HTTP", 60))
LOAD_S = float(os.environ.get("KETENBUS_SOAK_LOAD_S", 18.0))
SEED = int(os.environ.get("KETENBUS_SOAK_SEED", 7))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
API_KEY = "key-politie-" + uuid.uuid4().hex


class IngressProcess:
    """`ketenbus ingress` in a subprocess on a fixed port, so it can be killed and restarted."""

    def __init__(self, bootstrap: str, log_path: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "KETENBUS_BOOTSTRAP": bootstrap,
            "KETENBUS_API_KEYS": f"politie={API_KEY}",
            "KETENBUS_INGRESS_PORT": str(self.port),
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "ingress"],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=out,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def zsm_event(i: int) -> dict[str, Any]:
    zaak = f"HTTP-{i}"
    data = sample("Zsm", "zaak_aangemeld", zaak, tijdstip=T0 + dt.timedelta(seconds=i))
    data = json.loads(json.dumps(data, default=lambda t: t.isoformat()))
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"crash-test/{zaak}")),
        "source": source_for("politie"),
        "type": "nl.ketenbus.zsm.zaak_aangemeld",
        "time": data["tijdstip"],
        "subject": zaak,
        "data": data,
    }


class HttpPartner(threading.Thread):
    """Posts its events through the ingress, retrying each with the same id until accepted."""

    def __init__(self, port: int, events: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/v1/events"
        self.events = events
        self.accepted: list[str] = []
        self.refused = Counter[str]()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}", "content-type": "application/cloudevents+json"}
        with httpx.Client(timeout=10) as http:
            for event in self.events:
                while True:
                    try:
                        r = http.post(self.url, content=json.dumps(event), headers=headers)
                    except httpx.TransportError:
                        self.refused["connection"] += 1
                        time.sleep(0.2)
                        continue
                    if r.status_code in (200, 202):
                        self.accepted.append(event["id"])
                        break
                    assert r.status_code == 503, r.text  # the only refusal a valid event may get
                    self.refused["503"] += 1
                    time.sleep(0.2)
                time.sleep(LOAD_S / len(self.events))


@pytest.fixture
def bus(tmp_path) -> Iterator[IsolatedBus]:
    with isolated_bus(tmp_path / "workers.log", "t-crash") as b:
        yield b


def test_nothing_accepted_is_lost_across_sigkills(bus: IsolatedBus, tmp_path) -> None:
    rng = random.Random(SEED)
    print(f"\nseed {SEED}")
    ingress = IngressProcess(bus.broker.bootstrap, tmp_path / "ingress.log")
    ingress.start()
    # The partners' inboxes; the bus's own (escalations) is checked on its own below.
    inboxes = Tap(bus.broker.bootstrap, watched=[t for t in topics.INBOXES if t != topics.inbox(BUS)])
    try:
        kafka_events = valid_events(KAFKA_EVENTS, rng, "KAFKA")
        http = HttpPartner(ingress.port, [zsm_event(i) for i in range(HTTP_CASES)])
        http.start()
        kills = sorted(rng.uniform(2, LOAD_S - 4) for _ in range(3))
        victims = [("router", bus.router), ("timers", bus.timers), ("ingress", ingress)]
        started = time.monotonic()
        acked: list[str] = []
        for i, rec in enumerate(kafka_events):
            while victims and time.monotonic() - started > kills[0]:
                kills.pop(0)
                name, proc = victims.pop(0)
                proc.kill()
                proc.start()
                print(f"\nSIGKILL {name} after {time.monotonic() - started:.1f} s, restarted")
            bus.publisher.raw(rec.topic, rec.key, rec.value, rec.headers, wait=True)  # acked by the broker
            acked.append(header(rec.headers, "ce_id") or "")
            time.sleep(max(0.0, started + LOAD_S * (i + 1) / KAFKA_EVENTS - time.monotonic()))
        http.join(120)
        assert not http.is_alive(), "the HTTP partner could not get all its events accepted"

        # Everything accepted is on an inbox: the oracle routes exactly those records.
        inboxes.sync()
        on_inbox = [
            InRecord(s.topic, s.partition, s.offset, s.key, s.value, s.headers) for s in inboxes.records()
        ]
        ids_on_inbox = {header(r.headers, "ce_id") for r in on_inbox}
        lost = (set(acked) | set(http.accepted)) - ids_on_inbox
        assert not lost, f"{len(lost)} accepted events are not on any inbox"
        expected = oracle(sorted(on_inbox, key=lambda r: (r.topic, r.partition, r.offset)))

        # Every allowed outbox got it; no outbox got anything else.
        outboxes = Tap(bus.broker.bootstrap, watched=(*topics.OUTBOXES, topics.VERSTREKKINGEN))
        try:
            want = {(i, t) for i, ts in expected.deliveries.items() for t in ts}
            outboxes.wait(
                lambda t: want <= {(i, o) for i, c in delivered(t.records()).items() for o in c},
                180,
                "every allowed delivery",
            )
            outboxes.sync()
            records = outboxes.records()
        finally:
            outboxes.close()
        got = delivered([s for s in records if s.topic in topics.OUTBOXES])
        pairs = {(i, o) for i, c in got.items() for o in c}
        assert pairs == want, f"forbidden deliveries: {sorted(pairs - want)[:5]}"
        duplicates = sum(n - 1 for c in got.values() for n in c.values())

        # Nothing beyond the policy in any outbox record's bytes.
        assert not leaks([s for s in records if s.topic in topics.OUTBOXES], expected)

        # Every delivery has its Verstrekking.
        register = defaultdict(set)
        for s in records:
            if s.topic == topics.VERSTREKKINGEN:
                _, v = default_codec().decode(s.value)
                register[v["event_id"]].add(topics.outbox(partner_from_symbol(v["ontvanger"])))
        unregistered = [(i, o) for i, o in want if o not in register.get(i, set())]
        assert not unregistered, f"deliveries without a Verstrekking: {unregistered[:5]}"

        # Every ZSM deadline fires once for a receiver that drops repeated ids.
        bus.clock.tick(T0 + dt.timedelta(hours=7), timeout=120)
        bus.tap.sync()
        escalations: dict[str, set[str]] = defaultdict(set)
        wire = 0
        for i in range(HTTP_CASES):
            for s in bus.tap.records(f"HTTP-{i}", topics.inbox("ketenbus")):
                _, esc = default_codec().decode(s.value)
                if esc["timer"] == "zsm-beslissing":
                    escalations[f"HTTP-{i}"].add(esc["escalatie_id"])
                    wire += 1
        fired = {zaak: len(ids) for zaak, ids in escalations.items()}
        assert fired == {f"HTTP-{i}": 1 for i in range(HTTP_CASES)}, fired
        # No personal data in any log line of any process, killed or not.
        for log in (tmp_path / "workers.log", tmp_path / "ingress.log"):
            assert MARKER not in log.read_text(errors="replace"), f"a marker value in {log.name}"
        print(
            f"sent {KAFKA_EVENTS} on Kafka + {HTTP_CASES} over HTTP ({sum(http.refused.values())} refusals "
            f"retried: {dict(http.refused)}); accepted {len(acked) + len(http.accepted)}; delivered "
            f"{len(want)} (event, outbox) pairs; lost 0; duplicates on the wire {duplicates}; "
            f"deadlines fired {len(fired)} once each ({wire - len(fired)} re-fired copies on the wire)"
        )
    finally:
        inboxes.close()
        ingress.stop()
