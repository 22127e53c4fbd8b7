"""The router on the real embedded broker with the shipped policy: what arrives where, with
which fields and headers, the disclosure register, the DLQ, and what the logs hold."""

from __future__ import annotations

import time

import pytest

from schemas import default_codec, family
from streams import topics
from streams.policy import load
from streams.settings import Settings
from tests.badinputs import catalogue
from tests.bus import Publisher, Tap, case_ref
from tests.samples import MARKER, every_step, producer_of, sample

pytestmark = pytest.mark.integration

POLICY = load(Settings().policy_file)
GRACE = 0.5  # after the expected records arrived: time for any unexpected one to show up


def expected_deliveries(family_name: str, datum: dict, producer: str) -> dict[str, frozenset[str]]:
    fam = family(family_name)
    recipients = [p for p in topics.PARTNERS if p != producer]
    decisions = POLICY.decide(fam, fam.ce_type(datum["stap"]), datum, recipients)
    return {r: d.fields for r, d in decisions.items() if d.allowed}


@pytest.mark.parametrize(("family_name", "step"), every_step())
def test_event_reaches_exactly_the_allowed_outboxes(
    router, publisher: Publisher, tap: Tap, family_name, step
):
    zaak = case_ref()
    producer = producer_of(family_name, step)
    datum = sample(family_name, step, zaak)
    ce_id = publisher.event(producer, family_name, datum)
    expected = expected_deliveries(family_name, datum, producer)

    tap.wait_for(zaak, topics.EVENTS)
    register = tap.wait_for(zaak, topics.VERSTREKKINGEN, count=len(expected)) if expected else []
    time.sleep(GRACE)

    outbox_records = [s for s in tap.records(zaak) if s.topic.startswith("keten.out.")]
    delivered = {s.topic.removeprefix("keten.out."): s for s in outbox_records}
    assert set(delivered) == set(expected)
    assert len(outbox_records) == len(delivered), "a recipient received the event more than once"
    for recipient, seen in delivered.items():
        record = seen.decode(resolve=False)
        assert set(record) == expected[recipient], recipient
        assert seen.header("ce_id") == ce_id
        assert seen.header("ketenbus_grondslag") and seen.header("ketenbus_doel")
        assert seen.header("ketenbus_policy_version") == POLICY.version
        # the bytes themselves hold nothing unreleased
        if "woonadres" not in expected[recipient] and "contactadres" not in expected[recipient]:
            assert MARKER.encode() + b" " not in seen.value
    verstrekkingen = [default_codec().decode(s.value)[1] for s in tap.records(zaak, topics.VERSTREKKINGEN)]
    assert len(register) == len(verstrekkingen) == len(expected)
    assert sorted(v["ontvanger"].replace("_", "-") for v in verstrekkingen) == sorted(expected)
    for v in verstrekkingen:
        assert v["event_id"] == ce_id
        assert set(v["velden"]) == expected[v["ontvanger"].replace("_", "-")]
        assert v["grondslag"] and v["doel"] and v["policy_versie"] == POLICY.version


def test_location_of_an_alarm_never_reaches_veilig_thuis(router, publisher: Publisher, tap: Tap):
    zaak = case_ref()
    publisher.event(
        "alarmcentrale", "SlachtofferdeviceAlert", sample("SlachtofferdeviceAlert", "alarm", zaak)
    )
    (vt,) = tap.wait_for(zaak, topics.outbox("veilig-thuis"))
    record = vt.decode(resolve=False)
    assert "locatie" not in record and "afstand_m" not in record
    (politie,) = tap.wait_for(zaak, topics.outbox("politie"))
    assert politie.decode(resolve=False)["locatie"]["lat"] == pytest.approx(52.0907)


def test_a_duplicate_id_is_delivered_once(router, publisher: Publisher, tap: Tap):
    zaak = case_ref()
    datum = sample("Huisverbod", "opgelegd", zaak)
    ce_id = publisher.event("gemeente", "Huisverbod", datum)
    publisher.event("gemeente", "Huisverbod", datum, ce_id=ce_id)
    (dlq,) = tap.wait_for(zaak, topics.DLQ)
    assert dlq.header("ketenbus_reden") == "duplicate.ce_id"
    time.sleep(GRACE)
    assert len(tap.records(zaak, topics.outbox("politie"))) == 1
    assert len(tap.records(zaak, topics.EVENTS)) == 1


def test_bad_input_is_dead_lettered_while_valid_events_flow(router, publisher: Publisher, tap: Tap):
    zaak = case_ref("DLQ")
    bad = catalogue(zaak)
    valid_cases = []
    for item in bad:
        publisher.raw(item.topic, item.key, item.value, item.headers, wait=False)
        ok = case_ref("OK")
        valid_cases.append(ok)
        publisher.event("veilig-thuis", "Melding", sample("Melding", "ontvangen", ok), wait=False)
    publisher.flush()

    letters = tap.wait_for(zaak, topics.DLQ, count=len(bad), timeout=60)
    got = sorted(default_codec().decode(s.value)[1]["reden"] for s in letters)
    assert got == sorted(b.reason for b in bad)
    for s in letters:
        letter = default_codec().decode(s.value)[1]
        assert letter["bron_topic"].startswith("keten.in.")
        assert letter["bron_offset"] >= 0
    for ok in valid_cases:
        tap.wait_for(ok, topics.outbox("politie"))
    time.sleep(GRACE)
    assert not [s for s in tap.records(zaak) if s.topic.startswith("keten.out.")]


def test_no_log_line_holds_personal_data(router, publisher: Publisher, tap: Tap, router_log):
    zaak = case_ref()
    for fam_name, step in every_step():
        publisher.event(producer_of(fam_name, step), fam_name, sample(fam_name, step, zaak), wait=False)
    for item in catalogue(zaak):
        publisher.raw(item.topic, item.key, item.value, item.headers, wait=False)
    publisher.flush()
    tap.wait_for(zaak, topics.DLQ, count=len(catalogue(zaak)), timeout=60)
    tap.wait_for(zaak, topics.EVENTS, count=len(every_step()), timeout=60)
    text = router_log.read_text(encoding="utf-8", errors="replace")
    assert "dead-lettered" in text, "the router logged nothing: the scan would prove nothing"
    assert MARKER not in text
    assert "Voorbeeldstraat" not in text and "52.0907" not in text
