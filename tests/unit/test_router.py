"""The router core without a broker: acceptance, projection, register and dead letters."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from schemas import Envelope, default_codec
from streams import topics
from streams.policy import Policy
from streams.router import ID_NAMESPACE, InRecord, Router, derived_id
from tests.badinputs import T0, catalogue

POLICY = Policy.model_validate(
    {
        "version": "unit-1",
        "houd_het_klein": {
            "applies_when": {"field": "schadelijke_praktijk", "equals": True},
            "lifted_when": {"field": "risicotaxatie_vastgelegd", "equals": True},
            "allowed_recipients": ["politie", "veilig-thuis", "om"],
        },
        "rules": [
            {
                "id": "melding-acuut-politie",
                "types": ["Melding.ontvangen"],
                "to": ["politie"],
                "when": {"field": "acuut", "equals": True},
                "fields": ["persoon_refs", "woonadres"],
                "grondslag": "Wmo 2015 art. 5.2.6",
                "doel": "Samen op in Acuut",
            },
            {
                "id": "melding-gemeente",
                "types": ["Melding.*"],
                "to": ["gemeente"],
                "fields": ["acuut"],
                "grondslag": "Wmo 2015",
                "doel": "Regie",
            },
        ],
    }
)


def record(
    partner: str, family: str, datum: dict, *, inbox: str | None = None, ce_id: str | None = None
) -> InRecord:
    datum = {"tijdstip": T0, **datum}
    env = Envelope.new(partner, f"nl.ketenbus.{family.lower()}.{datum['stap']}", datum["zaak_ref"], T0)
    if ce_id:
        env = Envelope(ce_id, env.source, env.type, env.time, env.subject)
    value = default_codec().encode(family, datum)
    return InRecord(inbox or topics.inbox(partner), 0, 7, datum["zaak_ref"].encode(), value, env.to_headers())


def by_topic(outcome) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in outcome.records:
        out.setdefault(r.topic, []).append(r)
    return out


def test_acute_melding_goes_to_politie_with_only_released_fields() -> None:
    rec = record(
        "veilig-thuis",
        "Melding",
        {
            "stap": "ontvangen",
            "zaak_ref": "Z1",
            "acuut": True,
            "woonadres": "Teststraat 1",
            "signalen": ["verwurging"],
            "persoon_refs": [{"persoon_ref": "P1", "rol": "slachtoffer"}],
        },
    )
    outcome = Router(POLICY).route(rec)
    out = by_topic(outcome)
    assert set(out) == {
        topics.EVENTS,
        topics.outbox("politie"),
        topics.outbox("gemeente"),
        topics.VERSTREKKINGEN,
    }
    politie = out[topics.outbox("politie")][0]
    headers = dict(politie.headers)
    assert headers["ketenbus_grondslag"] == b"Wmo 2015 art. 5.2.6"
    assert headers["ketenbus_doel"] == b"Samen op in Acuut"
    assert headers["ketenbus_policy_version"] == b"unit-1"
    _, delivered = default_codec().decode(
        politie.value, resolve=False, fields_hint=["persoon_refs", "woonadres"]
    )
    assert set(delivered) == {"stap", "zaak_ref", "tijdstip", "persoon_refs", "woonadres"}
    assert b"verwurging" not in politie.value and b"Teststraat" in politie.value
    gemeente = out[topics.outbox("gemeente")][0]
    assert b"Teststraat" not in gemeente.value
    register = [default_codec().decode(r.value)[1] for r in out[topics.VERSTREKKINGEN]]
    assert sorted(v["ontvanger"] for v in register) == ["gemeente", "politie"]
    assert all(v["persoon_refs"] == ["P1"] for v in register)


def test_non_acute_melding_is_not_disclosed_to_politie() -> None:
    rec = record("veilig-thuis", "Melding", {"stap": "ontvangen", "zaak_ref": "Z2", "acuut": False})
    out = by_topic(Router(POLICY).route(rec))
    assert topics.outbox("politie") not in out
    assert len(out[topics.VERSTREKKINGEN]) == len(out[topics.outbox("gemeente")]) == 1


def test_houd_het_klein_narrows_to_the_small_circle_until_risicotaxatie() -> None:
    egg = {"stap": "ontvangen", "zaak_ref": "Z3", "acuut": True, "schadelijke_praktijk": True}
    out = Router(POLICY).route(record("veilig-thuis", "Melding", egg))
    assert topics.outbox("gemeente") not in by_topic(out)
    assert out.decisions["gemeente"].outcome == "narrowed"
    assert topics.outbox("politie") in by_topic(out)
    lifted = Router(POLICY).route(
        record("veilig-thuis", "Melding", {**egg, "risicotaxatie_vastgelegd": True})
    )
    assert topics.outbox("gemeente") in by_topic(lifted)


def test_the_producer_does_not_receive_its_own_event() -> None:
    rec = record(
        "gemeente", "Melding", {"stap": "ontvangen", "zaak_ref": "Z4"}, inbox=topics.inbox("gemeente")
    )
    outcome = Router(POLICY).route(rec)
    # gemeente may not produce meldingen: rejected before any decision
    assert outcome.dead_letter == "semantiek.producer_not_allowed"


def test_duplicate_ids_are_delivered_once() -> None:
    router = Router(POLICY)
    datum = {"stap": "ontvangen", "zaak_ref": "Z5", "acuut": True}
    first = router.route(record("veilig-thuis", "Melding", datum, ce_id="same-id"))
    again = router.route(record("veilig-thuis", "Melding", datum, ce_id="same-id"))
    assert first.dead_letter is None
    assert again.dead_letter == "duplicate.ce_id"
    assert [r.topic for r in again.records] == [topics.DLQ]


@pytest.mark.parametrize("bad", catalogue("Z-BAD"), ids=lambda b: b.name)
def test_each_bad_input_is_dead_lettered_with_its_reason(bad) -> None:
    outcome = Router(POLICY).route(InRecord(bad.topic, 1, 42, bad.key, bad.value, bad.headers))
    assert outcome.dead_letter == bad.reason
    (dlq,) = outcome.records
    assert dlq.topic == topics.DLQ
    _, letter = default_codec().decode(dlq.value)
    assert letter["reden"] == bad.reason
    assert (letter["bron_topic"], letter["bron_partitie"], letter["bron_offset"]) == (bad.topic, 1, 42)
    assert letter["waarde"] == (bad.value or None) or letter["waarde"] == bad.value
    assert [(h["key"], h["value"]) for h in letter["headers"]] == list(bad.headers)


def test_reason_codes_are_distinct_per_codec_and_envelope_class() -> None:
    reasons = [b.reason for b in catalogue("Z")]
    codec_reasons = [r for r in reasons if r.startswith("codec.")]
    assert len(set(codec_reasons)) == len(codec_reasons)


def test_an_unexpected_error_is_dead_lettered_not_raised(monkeypatch) -> None:
    router = Router(POLICY)

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(router.policy.__class__, "decide", boom)
    outcome = router.route(record("veilig-thuis", "Melding", {"stap": "ontvangen", "zaak_ref": "Z6"}))
    assert outcome.dead_letter == "router.internal_error"


def test_verstrekking_time_comes_from_the_injected_clock() -> None:
    fixed = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    router = Router(POLICY, clock=lambda: fixed)
    out = by_topic(router.route(record("veilig-thuis", "Melding", {"stap": "ontvangen", "zaak_ref": "Z7"})))
    (v,) = out[topics.VERSTREKKINGEN]
    assert default_codec().decode(v.value)[1]["tijdstip"] == fixed


@pytest.mark.parametrize("name", ["verstrekking/abc/politie", "dlq/keten.in.om/2/17", "", "ü/€"])
def test_derived_ids_are_the_uuid5_of_the_namespace(name: str) -> None:
    assert derived_id(name) == str(uuid.uuid5(ID_NAMESPACE, name))


def test_each_register_record_has_the_envelope_of_its_own_id() -> None:
    fixed = dt.datetime(2030, 1, 1, 12, 30, 15, 250000, tzinfo=dt.UTC)
    datum = {"stap": "ontvangen", "zaak_ref": "Z8", "acuut": True, "signalen": ["verwurging"]}
    outcome = Router(POLICY, clock=lambda: fixed).route(record("veilig-thuis", "Melding", datum))
    register = by_topic(outcome)[topics.VERSTREKKINGEN]
    assert len(register) > 1  # the headers of one must not leak into another
    for v in register:
        vid = default_codec().decode(v.value)[1]["verstrekking_id"]
        expected = Envelope.from_bus(vid, "nl.ketenbus.verstrekking.vastgelegd", fixed, "Z8").to_headers()
        assert v.headers == expected
