"""Risk patterns on the real broker: a red flag, and the radar of three meldingen about one
person, each raise an Escalatie that proposes an Actieoverleg to the partners the pattern names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from schemas import default_codec
from schemas.registry import partner_from_symbol
from streams import topics
from streams.deadlines import load_termijnen
from streams.settings import Settings
from tests.bus import IsolatedBus, case_ref, isolated_bus

pytestmark = pytest.mark.integration

TERMIJNEN = load_termijnen(Settings().termijnen_file)
T0 = dt.datetime(2032, 2, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedBus]:
    with isolated_bus(tmp_path_factory.mktemp("patterns") / "workers.log", "t-patterns") as b:
        yield b


def pattern_escalations(bus: IsolatedBus, zaak: str, stap: str) -> list[dict]:
    bus.tap.sync()
    found = [default_codec().decode(s.value)[1] for s in bus.tap.records(zaak, topics.inbox("ketenbus"))]
    return [e for e in found if e["stap"] == stap]


def wait_for_pattern(bus: IsolatedBus, person: str, cases: list[str]) -> None:
    try:
        # the escalation names the case of whichever melding completed the pattern
        bus.tap.wait(
            lambda t: any(pattern_escalations(bus, z, "patroon") for z in cases), message="control pattern"
        )
    except AssertionError as exc:
        radar = len(bus.tap.records(person, topics.RADAR))
        events = sum(len(bus.tap.records(z, topics.EVENTS)) for z in cases)
        raise AssertionError(f"{exc}; on keten.events: {events}, on keten.radar: {radar}") from None


def prove_the_radar_ran(bus: IsolatedBus) -> None:
    """Three meldingen about a control person, published after the ones under test. Their
    pattern firing shows the radar got this far; the meldings under test reached keten.radar
    before these did (they were routed first), and the single radar agent reads in arrival
    order per partition, so a pattern they formed would have fired by now in practice."""
    control, control_cases = case_ref("CONTROL"), [case_ref("CTRL") for _ in range(3)]
    for zaak in control_cases:
        bus.publisher.event("veilig-thuis", "Melding", melding(zaak, control, T0))
    wait_for_pattern(bus, control, control_cases)


def melding(zaak: str, person: str, at: dt.datetime, rol: str = "slachtoffer", **extra) -> dict:
    return {
        "stap": "ontvangen",
        "zaak_ref": zaak,
        "tijdstip": at,
        "acuut": False,
        "persoon_refs": [{"persoon_ref": person, "rol": rol}],
        **extra,
    }


def test_a_red_flag_proposes_an_actieoverleg_once_per_signal(bus: IsolatedBus) -> None:
    zaak = case_ref("RV")
    pattern = TERMIJNEN.pattern("rode-vlaggen")
    bus.publisher.event("veilig-thuis", "Melding", melding(zaak, case_ref("P"), T0, signalen=["verwurging"]))
    bus.tap.wait(lambda t: pattern_escalations(bus, zaak, "risicosignaal"), message="red-flag escalation")
    # the same signal again in a later event of the case: no second escalation
    bus.publisher.event(
        "veilig-thuis",
        "Melding",
        {
            "stap": "veiligheidsbeoordeling_afgerond",
            "zaak_ref": zaak,
            "tijdstip": T0,
            "signalen": ["verwurging"],
        },
    )
    bus.tap.wait_for(zaak, topics.EVENTS, count=2)
    bus.clock.tick(T0)  # everything before this has been through the timer worker
    (esc,) = pattern_escalations(bus, zaak, "risicosignaal")
    assert esc["voorstel"] == "actieoverleg"
    assert esc["signalen"] == ["verwurging"]
    assert {partner_from_symbol(p) for p in esc["ontvangers"]} == set(pattern.notify)
    bus.tap.wait(
        lambda t: (
            {
                s.topic.removeprefix("keten.out.")
                for s in t.records(zaak)
                if s.topic.startswith("keten.out.") and s.header("ce_id") == esc["escalatie_id"]
            }
            == set(pattern.notify)
        ),
        message="red-flag escalation delivered to the pattern's partners",
    )


def test_three_meldingen_about_one_person_within_a_year_form_a_pattern(bus: IsolatedBus) -> None:
    person = case_ref("PERSOON")
    cases = [case_ref("RADAR") for _ in range(3)]
    sources = ["veilig-thuis", "politie", "veilig-thuis"]
    for i, (zaak, source) in enumerate(zip(cases, sources, strict=True)):
        bus.publisher.event(source, "Melding", melding(zaak, person, T0 + dt.timedelta(days=100 * i)))
        if i < 2:
            bus.tap.wait_for(zaak, topics.EVENTS)
            bus.clock.tick(T0 + dt.timedelta(days=100 * i))
            assert pattern_escalations(bus, zaak, "patroon") == []
    bus.tap.wait(lambda t: pattern_escalations(bus, cases[2], "patroon"), message="radar escalation")
    (esc,) = pattern_escalations(bus, cases[2], "patroon")
    assert [p["persoon_ref"] for p in esc["persoon_refs"]] == [person]
    assert esc["voorstel"] == "actieoverleg"


def test_meldingen_spread_over_more_than_a_year_are_no_pattern(bus: IsolatedBus) -> None:
    person = case_ref("PERSOON")
    cases = [case_ref("SPREAD") for _ in range(3)]
    for i, zaak in enumerate(cases):
        bus.publisher.event("veilig-thuis", "Melding", melding(zaak, person, T0 + dt.timedelta(days=200 * i)))
    for zaak in cases:
        bus.tap.wait_for(zaak, topics.EVENTS)
    prove_the_radar_ran(bus)
    assert all(pattern_escalations(bus, z, "patroon") == [] for z in cases)


def test_the_melder_does_not_count(bus: IsolatedBus) -> None:
    melder = case_ref("MELDER")
    cases = [case_ref("M") for _ in range(3)]
    for zaak in cases:
        bus.publisher.event("veilig-thuis", "Melding", melding(zaak, melder, T0, rol="melder"))
    for zaak in cases:
        bus.tap.wait_for(zaak, topics.EVENTS)
    prove_the_radar_ran(bus)
    assert all(pattern_escalations(bus, z, "patroon") == [] for z in cases)
