"""The webhook egress on the real embedded broker, delivering to a local HTTPS receiver that
verifies every signature as a partner would: deliveries survive a failing endpoint, keep their
order within a case, never skip, commit nothing before a 2xx, and resume after a restart."""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from connectors import webhook
from streams import topics
from streams.broker import EmbeddedBroker
from streams.settings import Settings
from tests.bus import Publisher, Tap, case_ref
from tests.samples import sample

pytestmark = pytest.mark.integration

# (producer, family, step): each released by the shipped policy to the partners the test names.
TO_VEILIG_THUIS = [
    ("gemeente", "Huisverbod", "opgelegd"),
    ("gemeente", "Huisverbod", "contactadres_opgegeven"),
    ("politie", "Huisverbod", "overtreden"),
    ("gemeente", "Huisverbod", "verlengd"),
]
TO_OM_AND_VEILIG_THUIS = [
    ("politie", "Actieoverleg", "aangevraagd"),
    ("politie", "Actieoverleg", "gehouden"),
    ("politie", "Huisverbod", "overtreden"),
]
TO_RAAD = [
    ("politie", "Zsm", "zaak_aangemeld"),
    ("politie", "Actieoverleg", "aangevraagd"),
    ("politie", "Actieoverleg", "gehouden"),
]


# -- a partner's endpoint -------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    body: bytes
    delivery_id: str | None
    signature_ok: bool
    status: int | None  # None: the connection was dropped without an answer
    run: int  # which run of the egress sent it (the restart test)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTPS endpoint on 127.0.0.1 that checks each signature with `webhook.verify` (401 when
    it fails) and answers 500 to the first `fail_first` requests (all, with `always_fail`),
    drops the connection on every `drop_every`-th one, and 204 otherwise."""

    def __init__(
        self,
        ca: trustme.CA,
        secret: str,
        *,
        fail_first: int = 0,
        drop_every: int = 0,
        always_fail: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.secret = secret
        self.fail_first, self.drop_every, self.always_fail, self.delay_s = (
            fail_first,
            drop_every,
            always_fail,
            delay_s,
        )
        self.run = 1
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/ketenbus"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        signature_ok = webhook.verify(
            self.secret, body, request.headers.get(webhook.SIGNATURE_HEADER), now=time.time()
        )
        with self.lock:
            n = len(self.received) + 1
            if self.always_fail or n <= self.fail_first:
                status: int | None = 500
            elif self.drop_every and n % self.drop_every == 0:
                status = None
            else:
                status = 204 if signature_ok else 401
            self.received.append(
                Received(
                    body, request.headers.get(webhook.DELIVERY_ID_HEADER), signature_ok, status, self.run
                )
            )
        time.sleep(self.delay_s)
        if status is None:
            request.close_connection = True  # no answer at all: the client sees a broken connection
            return
        request.send_response(status)
        request.end_headers()

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def delivered_ids(self) -> list[str]:
        """Event ids in the order of their first 2xx."""
        seen: dict[str, None] = {}
        for r in self.requests():
            if r.ok:
                seen.setdefault(r.event["id"])
        return list(seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- helpers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("webhook-ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def egress_settings(
    broker: EmbeddedBroker, cafile: Path, endpoints: dict[str, tuple[Receiver, str]]
) -> Settings:
    """Settings with consumer groups of their own, which have committed the current end of each
    outbox: the egress starts with the events published after this, not with what earlier
    tests left in the shared outboxes (and resumes from commits, as after a restart)."""
    settings = Settings(
        bootstrap=broker.bootstrap,
        app_id=f"t-webhook-{uuid.uuid4().hex[:8]}",
        webhooks=",".join(f"{p}={r.url}" for p, (r, _) in endpoints.items()),
        webhook_secrets=",".join(f"{p}={secret}" for p, (_, secret) in endpoints.items()),
        webhook_cafile=cafile,
        webhook_max_backoff_s=0.5,
    )
    for partner in endpoints:
        group, topic = webhook.group_id(settings.app_id, partner), topics.outbox(partner)
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.commit(
                {tp: OffsetAndMetadata(end, "", -1) for tp, end in consumer.end_offsets(parts).items()}
            )
        finally:
            consumer.close(autocommit=False)
        assert committed(broker, group, topic), "the start offsets were not committed"
    return settings


@contextlib.contextmanager
def egress(settings: Settings) -> Iterator[threading.Event]:
    """`webhook.run` in a thread, stopped (and checked to have stopped) on exit."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            webhook.run(settings, stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="test-webhook-egress")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the egress did not stop"
    assert not errors, errors


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.05)


def publish_cases(publisher: Publisher, steps: list[tuple[str, str, str]], cases: int) -> list[str]:
    zaken = [case_ref("WH") for _ in range(cases)]
    for zaak in zaken:
        for producer, family_name, step in steps:
            publisher.event(producer, family_name, sample(family_name, step, zaak), wait=False)
    publisher.flush()
    return zaken


def outbox_ids(tap: Tap, partner: str, zaken: list[str], per_case: int) -> dict[str, list[str]]:
    """Per case, the event ids in `partner`'s outbox in offset order (one case, one partition)."""
    ids = {}
    for zaak in zaken:
        seen = sorted(tap.wait_for(zaak, topics.outbox(partner), count=per_case), key=lambda s: s.offset)
        assert len({s.partition for s in seen}) == 1
        ids[zaak] = [s.header("ce_id") for s in seen]
    return ids


def first_deliveries_per_case(receiver: Receiver, zaken: list[str]) -> dict[str, list[str]]:
    by_id = {r.event["id"]: r.event["subject"] for r in receiver.requests() if r.ok}
    order: dict[str, list[str]] = {z: [] for z in zaken}
    for ce_id in receiver.delivered_ids():
        if by_id[ce_id] in order:
            order[by_id[ce_id]].append(ce_id)
    return order


def all_delivered(receiver: Receiver, expected: dict[str, list[str]]) -> Callable[[], bool]:
    wanted = {i for ids in expected.values() for i in ids}
    return lambda: wanted <= set(receiver.delivered_ids())


def committed(broker: EmbeddedBroker, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close(autocommit=False)


# -- the tests ------------------------------------------------------------------------------------


def test_every_event_arrives_signed_and_in_order_despite_failures(
    router, broker, publisher: Publisher, tap: Tap, ca, receivers
):
    authority, cafile = ca
    receiver = Receiver(authority, "vt-secret", fail_first=5, drop_every=7)
    receivers.append(receiver)
    settings = egress_settings(broker, cafile, {"veilig-thuis": (receiver, "vt-secret")})
    zaken = publish_cases(publisher, TO_VEILIG_THUIS, cases=8)
    expected = outbox_ids(tap, "veilig-thuis", zaken, per_case=len(TO_VEILIG_THUIS))

    with egress(settings):
        wait_until(all_delivered(receiver, expected), 40, "every outbox event at the receiver")

    requests = receiver.requests()
    assert all(r.signature_ok for r in requests), "a signature did not verify"
    assert sum(r.status == 500 for r in requests) == 5
    assert any(r.status is None for r in requests), "no dropped connection was exercised"
    assert all(r.delivery_id == r.event["id"] for r in requests)
    assert first_deliveries_per_case(receiver, zaken) == expected
    # a failed event is retried before any later one is tried: attempts come in outbox order
    attempted: list[str] = []
    for r in requests:
        if not attempted or attempted[-1] != r.event["id"]:
            attempted.append(r.event["id"])
    assert len(attempted) == len(set(attempted)), "an event was attempted again after a later one"
    # what arrives is what the outbox released, with the grondslag of the disclosure
    outbox = {s.header("ce_id"): s for z in zaken for s in tap.records(z, topics.outbox("veilig-thuis"))}
    for r in requests:
        if r.event["id"] in outbox:
            seen = outbox[r.event["id"]]
            assert set(r.event["data"]) == set(seen.decode(resolve=False))
            assert r.event["ketenbusgrondslag"] == seen.header("ketenbus_grondslag")
            assert seen.key is not None and r.event["subject"] == seen.key.decode()


def test_a_failing_endpoint_does_not_hold_up_another_partner(
    router, broker, publisher: Publisher, tap: Tap, ca, receivers
):
    authority, cafile = ca
    healthy = Receiver(authority, "vt-secret")
    failing = Receiver(authority, "om-secret", always_fail=True)
    receivers += [healthy, failing]
    settings = egress_settings(
        broker, cafile, {"veilig-thuis": (healthy, "vt-secret"), "om": (failing, "om-secret")}
    )
    om_group = webhook.group_id(settings.app_id, "om")
    vt_group = webhook.group_id(settings.app_id, "veilig-thuis")
    om_start = committed(broker, om_group, topics.outbox("om"))
    vt_start = committed(broker, vt_group, topics.outbox("veilig-thuis"))
    zaken = publish_cases(publisher, TO_OM_AND_VEILIG_THUIS, cases=6)
    expected_vt = outbox_ids(tap, "veilig-thuis", zaken, per_case=len(TO_OM_AND_VEILIG_THUIS))
    outbox_ids(tap, "om", zaken, per_case=len(TO_OM_AND_VEILIG_THUIS))

    with egress(settings):
        wait_until(all_delivered(healthy, expected_vt), 40, "every veilig-thuis event")
        wait_until(lambda: len(failing.requests()) >= 5, 20, "the failing endpoint to be retried")

    assert first_deliveries_per_case(healthy, zaken) == expected_vt
    attempts = failing.requests()
    assert all(r.signature_ok and r.status == 500 for r in attempts)
    assert len({r.delivery_id for r in attempts}) == 1, "the failing partner moved past its first event"
    assert committed(broker, om_group, topics.outbox("om")) == om_start, "om committed without a 2xx"
    vt_end = committed(broker, vt_group, topics.outbox("veilig-thuis"))
    moved = sum((vt_end[p] or 0) - (vt_start[p] or 0) for p in vt_end)
    assert moved >= sum(map(len, expected_vt.values()))


def test_a_restart_mid_stream_loses_nothing(router, broker, publisher: Publisher, tap: Tap, ca, receivers):
    authority, cafile = ca
    receiver = Receiver(authority, "raad-secret", drop_every=9, delay_s=0.02)
    receivers.append(receiver)
    settings = egress_settings(broker, cafile, {"raad": (receiver, "raad-secret")})
    zaken = publish_cases(publisher, TO_RAAD, cases=10)
    expected = outbox_ids(tap, "raad", zaken, per_case=len(TO_RAAD))
    wanted = {i for ids in expected.values() for i in ids}

    with egress(settings):
        wait_until(lambda: len(wanted & set(receiver.delivered_ids())) >= len(wanted) // 3, 40, "a third")
    first_run = wanted & set(receiver.delivered_ids())
    assert first_run < wanted, "the first run delivered everything before it was stopped"

    receiver.run = 2
    with egress(settings):
        wait_until(all_delivered(receiver, expected), 40, "every raad event after the restart")

    requests = receiver.requests()
    assert all(r.signature_ok for r in requests)
    assert first_deliveries_per_case(receiver, zaken) == expected
    # a redelivery is the same event under the same delivery id
    bodies: dict[str | None, bytes] = {}
    for r in requests:
        assert bodies.setdefault(r.delivery_id, r.body) == r.body
    # the second run resumed from the commits of the first instead of starting over
    again = {r.event["id"] for r in requests if r.run == 2 and r.ok} & first_run
    assert len(again) <= 1, f"{len(again)} events the first run had delivered came again"
