"""The broker goes away under load and comes back. While it is down the ingress answers 503,
never 202, and no worker exits; once a broker is back the ingress carries on by itself.

The embedded broker keeps data in memory only, so it comes back empty, with every partition
starting again at offset 0 (production runs Kafka with replication, where an outage loses
nothing, see the README). The router's consumer then waits at its old positions, past the end of
the new partitions, and Tansu does not answer that with OFFSET_OUT_OF_RANGE; so here the router
routes again only after a restart, which this test also checks. Against a broker that keeps its
log, as Kafka does, its positions stay valid."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from streams import topics
from streams.broker import EmbeddedBroker
from tests.bus import Publisher, RouterProcess, Tap, case_ref
from tests.resilience.test_crash_recovery import API_KEY, IngressProcess, zsm_event

pytestmark = pytest.mark.integration

HEADERS = {"Authorization": f"Bearer {API_KEY}", "content-type": "application/cloudevents+json"}


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker().start()
    topics.provision(b.bootstrap, 3)
    yield b
    b.stop()


def post(http: httpx.Client, url: str, i: int) -> int:
    try:
        return http.post(url, content=json.dumps(zsm_event(i)), headers=HEADERS).status_code
    except httpx.TransportError:
        return 0


def test_no_202_while_the_broker_is_down(broker: EmbeddedBroker, tmp_path) -> None:
    router = RouterProcess(broker.bootstrap, {"KETENBUS_APP_ID": "t-loss"}, tmp_path / "router.log", "router")
    ingress = IngressProcess(broker.bootstrap, tmp_path / "ingress.log")
    router.start()
    ingress.start()
    url = f"http://127.0.0.1:{ingress.port}/v1/events"
    try:
        with httpx.Client(timeout=15) as http:
            deadline = time.monotonic() + 60
            while post(http, url, 0) != 202:
                assert time.monotonic() < deadline, "the ingress did not come up"
                time.sleep(0.5)

            # The router is up and routing before the outage (one that cannot reach a broker
            # while it starts exits, for its supervisor to start it again).
            before = Tap(broker.bootstrap, watched=(topics.EVENTS,))
            try:
                before.wait_for("HTTP-0", topics.EVENTS, timeout=90)
            finally:
                before.close()
            port = broker.port
            broker.stop()
            down = [post(http, url, i) for i in range(1, 6)]
            assert 202 not in down and 200 not in down, down
            assert set(down) <= {503}, down

            back = EmbeddedBroker(port=port).start()  # memory only: it comes back empty
            try:
                topics.provision(back.bootstrap, 3)
                accepted = []
                deadline = time.monotonic() + 120
                for i in range(6, 16):
                    while (status := post(http, url, i)) not in (200, 202):
                        assert status == 503, status
                        assert time.monotonic() < deadline, "the ingress did not recover"
                        time.sleep(0.5)
                    accepted.append(f"HTTP-{i}")
                assert router.proc is not None and router.proc.poll() is None, "the router exited"
                assert ingress.proc is not None and ingress.proc.poll() is None, "the ingress exited"
                router.stop()  # its positions point past the end of the new, empty partitions
                router.start()
                publisher = Publisher(back.bootstrap)
                tap = Tap(back.bootstrap, watched=(topics.EVENTS,))
                try:
                    direct = case_ref("BACK")
                    publisher.event("politie", "Zsm", {"stap": "zaak_aangemeld", "zaak_ref": direct})
                    for zaak in [direct, *accepted]:  # what the ingress accepted after the outage
                        tap.wait_for(zaak, topics.EVENTS, timeout=120)
                finally:
                    tap.close()
                    publisher.close()
            finally:
                back.stop()
    finally:
        ingress.stop()
        router.stop()
