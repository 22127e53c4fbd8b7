"""The HTTP ingress against the real embedded broker: every status code it promises, and the
one promise that matters most: no 202 for an event the broker did not store."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors import ingress
from schemas.envelope import source_for
from schemas.registry import PARTNERS
from streams import topics
from streams.broker import EmbeddedBroker
from streams.settings import Settings
from tests.bus import Tap, case_ref
from tests.samples import MARKER, producer_of, sample

pytestmark = pytest.mark.integration

KEYS = {p: f"key-{p}-{uuid.uuid4().hex}" for p in PARTNERS}


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def cloudevent(
    family: str, step: str, zaak: str, *, partner: str | None = None, **data: Any
) -> dict[str, Any]:
    partner = partner or producer_of(family, step)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source_for(partner),
        "type": f"nl.ketenbus.{family.lower()}.{step}",
        "time": "2026-03-02T09:00:00Z",
        "subject": zaak,
        "datacontenttype": "application/json",
        "data": jsonable(sample(family, step, zaak, **data)),
    }


class Served:
    """The ingress in a thread of this process."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        keys = ",".join(f"{p}={k}" for p, k in KEYS.items())
        self.settings = Settings(bootstrap=bootstrap, api_keys=keys, ingress_port=0, **overrides)
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(20), "the ingress did not start"
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def _run(self) -> None:
        ingress.run(self.settings, self.stop, self._on_ready)

    def _on_ready(self, port: int) -> None:
        self.port = port
        self.ready.set()

    def post(self, body: Any, partner: str | None = "politie", **kwargs: Any) -> httpx.Response:
        headers = {"content-type": "application/cloudevents+json", **kwargs.pop("headers", {})}
        if partner is not None:
            headers["Authorization"] = f"Bearer {KEYS[partner]}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post("/v1/events", content=content, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()
        self.stop.set()
        self.thread.join(20)


@pytest.fixture(scope="module")
def served(broker: EmbeddedBroker) -> Iterator[Served]:
    s = Served(broker.bootstrap)
    yield s
    s.close()


@pytest.fixture(scope="module")
def inbox_tap(broker: EmbeddedBroker) -> Iterator[Tap]:
    t = Tap(broker.bootstrap, watched=(topics.inbox("politie"), topics.inbox("veilig-thuis")))
    yield t
    t.close()


def zsm(zaak: str, **kw: Any) -> dict[str, Any]:
    return cloudevent("Zsm", "zaak_aangemeld", zaak, **kw)


def test_accepted_event_is_on_the_inbox_and_routed(served: Served, inbox_tap: Tap, tap: Tap, router) -> None:
    zaak = case_ref("ING")
    event = zsm(zaak)
    before = ingress.REQUESTS.labels("politie", "202")._value.get()
    r = served.post(event)
    assert r.status_code == 202, r.text
    assert r.json() == {"id": event["id"], "status": "accepted"}
    assert ingress.REQUESTS.labels("politie", "202")._value.get() == before + 1  # the dashboard's series
    # 202 came after the broker's acknowledgement: the record is there.
    (stored,) = inbox_tap.wait_for(zaak, topics.inbox("politie"))
    assert stored.header("ce_id") == event["id"]
    assert stored.header("ce_source") == source_for("politie")
    assert stored.decode()["zaak_ref"] == zaak
    tap.wait_for(zaak, topics.EVENTS)  # and the router took it like any other inbox record


def test_the_same_id_twice_is_written_once(served: Served, inbox_tap: Tap) -> None:
    zaak = case_ref("ING")
    event = zsm(zaak)
    first, again = served.post(event), served.post(event)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"id": event["id"], "status": "duplicate"}
    inbox_tap.wait_for(zaak, topics.inbox("politie"))
    inbox_tap.sync()
    assert len(inbox_tap.records(zaak, topics.inbox("politie"))) == 1


def test_concurrent_duplicates_are_written_once(served: Served, inbox_tap: Tap) -> None:
    zaak = case_ref("ING")
    event = zsm(zaak)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(served.post(event).status_code)) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 7 + [202]
    inbox_tap.wait_for(zaak, topics.inbox("politie"))
    inbox_tap.sync()
    assert len(inbox_tap.records(zaak, topics.inbox("politie"))) == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": "wrong-key"}, {"Authorization": "Basic x"}],
)
def test_401_without_a_known_key(served: Served, headers: dict[str, str]) -> None:
    r = served.post(zsm(case_ref("ING")), partner=None, headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["reason"] == "auth.unauthenticated"


def test_the_x_api_key_header_authenticates_too(served: Served) -> None:
    r = served.post(zsm(case_ref("ING")), partner=None, headers={"X-API-Key": KEYS["politie"]})
    assert r.status_code == 202, r.text


def test_403_when_source_is_another_partner(served: Served, inbox_tap: Tap) -> None:
    zaak = case_ref("ING")
    event = zsm(zaak)
    r = served.post(event, partner="veilig-thuis")  # veilig-thuis's key, politie's source
    assert r.status_code == 403
    assert r.json()["reason"] == "auth.source_mismatch"
    inbox_tap.sync()
    assert not inbox_tap.records(zaak)


def test_403_when_the_partner_may_not_produce_the_type(served: Served) -> None:
    # A ZSM registration is the police's to make, not Veilig Thuis's.
    event = zsm(case_ref("ING"), partner="veilig-thuis")
    r = served.post(event, partner="veilig-thuis")
    assert r.status_code == 403
    assert r.json()["reason"] == "auth.producer_not_allowed"


def test_400_names_the_failing_fields_without_their_values(served: Served) -> None:
    event = cloudevent("Melding", "ontvangen", case_ref("ING"))
    event["data"]["persoon_refs"][0]["rol"] = f"{MARKER}-geen-rol"
    event["data"]["acuut"] = f"{MARKER}-no-bool"
    r = served.post(event, partner=producer_of("Melding", "ontvangen"))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["reason"] == "schema.invalid"
    fields = {e["field"] for e in body["errors"]}
    assert {"data.persoon_refs.0.rol", "data.acuut"} <= fields
    assert MARKER not in r.text


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("id"), "cloudevent.missing"),
        (lambda e: e.update(specversion="0.3"), "cloudevent.specversion"),
        (lambda e: e.update(time="yesterday"), "envelope.bad_time"),
        (lambda e: e.update(type="nl.ketenbus.zsm.bestaat_niet"), "envelope.unknown_type"),
        (lambda e: e.update(subject="another-case"), "envelope.subject_mismatch"),
        (lambda e: e.update(data=[1, 2]), "cloudevent.invalid"),
        (lambda e: e["data"].update(onbekend_veld=1), "schema.invalid"),
    ],
)
def test_400_for_an_invalid_cloudevent(served: Served, mutate: Any, reason: str) -> None:
    event = zsm(case_ref("ING"))
    mutate(event)
    r = served.post(event)
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == reason


def test_400_for_a_huisverbod_longer_than_the_law_allows(served: Served) -> None:
    zaak = case_ref("ING")
    start = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    event = cloudevent(
        "Huisverbod", "opgelegd", zaak, ingangsdatum=start, einddatum=start + dt.timedelta(days=11)
    )
    r = served.post(event, partner=producer_of("Huisverbod", "opgelegd"))
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "semantiek.huisverbod_too_long"


def test_400_for_a_body_that_is_not_json(served: Served) -> None:
    r = served.post(b"{not json")
    assert r.status_code == 400
    assert r.json()["reason"] == "http.invalid_json"


def test_400_for_json_nested_too_deep(served: Served) -> None:
    r = served.post(b"[" * 30_000 + b"]" * 30_000)  # under the size limit, over the recursion limit
    assert r.status_code == 400
    assert r.json()["reason"] == "http.invalid_json"


def test_415_for_another_content_type(served: Served) -> None:
    r = served.post(zsm(case_ref("ING")), headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_413_above_the_size_limit(served: Served) -> None:
    event = zsm(case_ref("ING"))
    event["data"]["padding"] = "x" * (served.settings.ingress_max_bytes + 1)
    r = served.post(event)
    assert r.status_code == 413


def test_health_and_openapi(served: Served) -> None:
    r = served.http.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "broker": True}
    spec = served.http.get("/v1/openapi.json").json()
    assert set(spec["paths"]["/v1/events"]["post"]["responses"]) >= {"202", "400", "401", "403", "413", "503"}


def test_503_while_the_broker_is_down_and_recovery_after(tmp_path) -> None:
    """202 means stored. While the broker is stopped every answer is 503; after it is back the
    partner's retries (same ids) are accepted, and every id that got a 202 is on the inbox."""
    broker = EmbeddedBroker().start()
    port = broker.port
    try:
        topics.provision(broker.bootstrap, 1)
        served = Served(broker.bootstrap, ingress_send_timeout_s=2.0)
        try:
            zaak = case_ref("OUT")
            assert served.post(zsm(zaak)).status_code == 202

            broker.stop()
            pending = [zsm(zaak) for _ in range(3)]
            down = [served.post(e) for e in pending]
            assert [r.status_code for r in down] == [503, 503, 503]
            assert all(r.headers.get("Retry-After") for r in down)
            assert served.http.get("/v1/health").status_code == 503

            broker = EmbeddedBroker(port=port).start()  # in-memory: it comes back empty
            topics.provision(broker.bootstrap, 1)
            accepted: list[str] = []
            for e in pending:  # the partner retries with the same ids until accepted
                for _ in range(20):
                    r = served.post(e)
                    if r.status_code in (200, 202):
                        accepted.append(e["id"])
                        break
                    assert r.status_code == 503, r.text
            assert len(accepted) == len(pending)
            assert served.http.get("/v1/health").status_code == 200

            tap = Tap(broker.bootstrap, watched=(topics.inbox("politie"),))
            try:
                tap.wait(
                    lambda t: {s.header("ce_id") for s in t.records(zaak)} >= set(accepted),
                    30,
                    "every accepted id on the inbox",
                )
            finally:
                tap.close()
        finally:
            served.close()
    finally:
        broker.stop()


def test_mtls_client_certificate_names_the_partner(broker: EmbeddedBroker, tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    client = ca.issue_cert("politie.example", common_name="politie")
    client.private_key_and_cert_chain_pem.write_to_path(tmp_path / "politie.pem")
    served = Served(
        broker.bootstrap,
        ingress_tls_cert=tmp_path / "server.pem",
        ingress_tls_key=tmp_path / "server.key",
        ingress_client_ca=ca_file,
    )
    base = f"https://127.0.0.1:{served.port}"
    headers = {"content-type": "application/cloudevents+json"}
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(tmp_path / "politie.pem")
        with httpx.Client(base_url=base, verify=context) as https:
            # The certificate alone authenticates politie.
            r = https.post("/v1/events", content=json.dumps(zsm(case_ref("TLS"))), headers=headers)
            assert r.status_code == 202, r.text
            # A key of another partner beside politie's certificate: refused.
            mixed = {**headers, "Authorization": f"Bearer {KEYS['om']}"}
            r = https.post("/v1/events", content=json.dumps(zsm(case_ref("TLS"))), headers=mixed)
            assert r.status_code == 401
        with httpx.Client(base_url=base, verify=str(ca_file)) as anonymous:
            r = anonymous.post("/v1/events", content=json.dumps(zsm(case_ref("TLS"))), headers=headers)
            assert r.status_code == 401  # no certificate, no key
    finally:
        served.close()


def test_a_flooding_partner_is_rate_limited_and_others_are_not(broker: EmbeddedBroker) -> None:
    served = Served(broker.bootstrap, ingress_rate_per_s=2.0, ingress_burst=5)
    try:
        flood = [served.post(zsm(case_ref("FLOOD"))).status_code for _ in range(30)]
        assert flood[:5] == [202] * 5
        assert flood.count(429) >= 20
        step = "veiligheidsbeoordeling_afgerond"
        assert producer_of("Melding", step) == "veilig-thuis"
        others = [
            served.post(cloudevent("Melding", step, case_ref("CALM")), partner="veilig-thuis").status_code
            for _ in range(3)
        ]
        assert others == [202, 202, 202]
        r = served.post(zsm(case_ref("FLOOD")))
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
    finally:
        served.close()
