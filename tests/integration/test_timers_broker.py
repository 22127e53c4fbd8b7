"""Every deadline of DOMAIN.md on the real broker, with the virtual clock: met in time means no
escalation; missed means exactly one, to exactly the partners the timer names; reminders where
the timer has them. Runs on its own broker so its clock is its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from schemas import default_codec
from schemas.registry import partner_from_symbol
from streams import topics
from streams.deadlines import load_termijnen
from streams.settings import Settings
from tests.bus import IsolatedBus, Tap, case_ref, isolated_bus

pytestmark = pytest.mark.integration

TERMIJNEN = load_termijnen(Settings().termijnen_file)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedBus]:
    with isolated_bus(tmp_path_factory.mktemp("timers") / "workers.log", "t-timers") as b:
        yield b


def escalations(tap: Tap, zaak: str) -> list[dict[str, Any]]:
    tap.sync()
    return [default_codec().decode(s.value)[1] for s in tap.records(zaak, topics.inbox("ketenbus"))]


def publish(bus: IsolatedBus, zaak: str, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    ids = [bus.publisher.event(partner, fam, {"zaak_ref": zaak, **datum}) for partner, fam, datum in steps]
    bus.tap.wait(
        lambda t: {s.header("ce_id") for s in t.records(zaak, topics.EVENTS)} >= set(ids),
        message=f"{len(ids)} events of {zaak} on keten.events",
    )


# Every scenario starts in its own year, so the virtual clock (which never goes back) moves
# forward through the module.
def start(year_offset: int) -> dt.datetime:
    return dt.datetime(2030 + year_offset, 4, 4, 8, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Scenario:
    timer: str
    start: tuple[str, str, dict[str, Any]]  # partner, family, datum (stap...)
    satisfy: tuple[str, str, dict[str, Any]]
    late: dt.timedelta  # after the start: past the deadline
    early: dt.timedelta  # after the start: before the deadline (for the satisfying event)


HV = {"ingangsdatum": None, "einddatum": None, "pleger_meerderjarig": True}
SCENARIOS = [
    Scenario(
        "vt-veiligheidsbeoordeling",
        ("veilig-thuis", "Melding", {"stap": "ontvangen", "acuut": False}),
        ("veilig-thuis", "Melding", {"stap": "veiligheidsbeoordeling_afgerond"}),
        dt.timedelta(days=9),
        dt.timedelta(days=4),
    ),
    Scenario(
        "vt-acuut",
        ("politie", "Melding", {"stap": "ontvangen", "acuut": True}),
        ("politie", "SamenOpInAcuut", {"stap": "gestart"}),
        dt.timedelta(hours=1, minutes=1),
        dt.timedelta(minutes=20),
    ),
    Scenario(
        "vt-onderzoek",
        ("veilig-thuis", "Melding", {"stap": "onderzoek_gestart"}),
        ("veilig-thuis", "Melding", {"stap": "onderzoek_afgerond"}),
        dt.timedelta(weeks=10, hours=1),
        dt.timedelta(weeks=9),
    ),
    Scenario(
        "vt-monitoring-3m",
        (
            "veilig-thuis",
            "Melding",
            {"stap": "veiligheidsbeoordeling_afgerond", "vervolgtraject": "voorwaarden_en_vervolg"},
        ),
        ("veilig-thuis", "Melding", {"stap": "monitoring_moment", "monitoring_maanden": 3}),
        dt.timedelta(days=93),
        dt.timedelta(days=80),
    ),
    Scenario(
        "vt-monitoring-12m",
        (
            "veilig-thuis",
            "Melding",
            {"stap": "veiligheidsbeoordeling_afgerond", "vervolgtraject": "voorwaarden_en_vervolg"},
        ),
        ("veilig-thuis", "Melding", {"stap": "monitoring_moment", "monitoring_maanden": 12}),
        dt.timedelta(days=367),
        dt.timedelta(days=350),
    ),
    Scenario(
        "actieoverleg",
        ("politie", "Actieoverleg", {"stap": "aangevraagd"}),
        ("politie", "Actieoverleg", {"stap": "gehouden"}),
        dt.timedelta(days=2),
        dt.timedelta(hours=3),
    ),
    Scenario(
        "zsm-beslissing",
        ("politie", "Zsm", {"stap": "zaak_aangemeld"}),
        ("om", "Zsm", {"stap": "beslissing", "beslissing": "strafbeschikking"}),
        dt.timedelta(hours=6, minutes=1),
        dt.timedelta(hours=5),
    ),
    Scenario(
        "huisverbod-contactadres",
        ("gemeente", "Huisverbod", {"stap": "opgelegd", **HV}),
        ("politie", "Huisverbod", {"stap": "contactadres_opgegeven", "contactadres": "Logeeradres 9"}),
        dt.timedelta(hours=25),
        dt.timedelta(hours=20),
    ),
    Scenario(
        "huisverbod-verlenging",
        ("gemeente", "Huisverbod", {"stap": "opgelegd", **HV}),
        ("gemeente", "Huisverbod", {"stap": "beeindigd"}),
        dt.timedelta(days=10, hours=1),
        dt.timedelta(days=9),
    ),
    Scenario(
        "device-bevestiging",
        ("alarmcentrale", "SlachtofferdeviceAlert", {"stap": "alarm", "alarm_id": "A1", "soort": "noodknop"}),
        (
            "politie",
            "SlachtofferdeviceAlert",
            {"stap": "bevestigd", "alarm_id": "A1", "bevestigd_door": "politie"},
        ),
        dt.timedelta(seconds=61),
        dt.timedelta(seconds=30),
    ),
    Scenario(
        "device-opvolging",
        (
            "alarmcentrale",
            "SlachtofferdeviceAlert",
            {"stap": "alarm", "alarm_id": "A2", "soort": "nabijheid"},
        ),
        ("reclassering", "SlachtofferdeviceAlert", {"stap": "opgevolgd", "alarm_id": "A2"}),
        dt.timedelta(minutes=16),
        dt.timedelta(minutes=10),
    ),
]


def test_every_domain_timer_has_a_scenario() -> None:
    assert {s.timer for s in SCENARIOS} == {t.name for t in TERMIJNEN.timers}


def at(step: tuple[str, str, dict[str, Any]], when: dt.datetime) -> tuple[str, str, dict[str, Any]]:
    partner, fam, datum = step
    datum = {**datum, "tijdstip": when}
    if fam == "Huisverbod" and datum.get("ingangsdatum", 0) is None:
        datum |= {"ingangsdatum": when, "einddatum": when + dt.timedelta(days=10)}
    return partner, fam, {k: v for k, v in datum.items() if v is not None}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.timer)
def test_timer_met_in_time_and_missed(bus: IsolatedBus, scenario: Scenario, request) -> None:
    index = SCENARIOS.index(scenario)
    t0 = start(index * 2)
    met, missed = case_ref("MET"), case_ref("MISSED")
    publish(bus, met, [at(scenario.start, t0), at(scenario.satisfy, t0 + scenario.early)])
    publish(bus, missed, [at(scenario.start, t0)])
    bus.clock.tick(t0 + scenario.late)

    timer = TERMIJNEN.timer(scenario.timer)
    assert [e for e in escalations(bus.tap, met) if e["timer"] == timer.name] == []
    fired = [e for e in escalations(bus.tap, missed) if e["timer"] == timer.name]
    expired = [e for e in fired if e["stap"] == "termijn_verlopen"]
    assert len(expired) == 1, fired
    (esc,) = expired
    assert {partner_from_symbol(p) for p in esc["ontvangers"]} == set(timer.notify)
    assert esc["deadline"] <= t0 + scenario.late
    reminders = [e for e in fired if e["stap"] == "herinnering"]
    assert len(reminders) == len(timer.reminders)

    # ...and the router delivered it to exactly the named partners.
    delivered = lambda t: {  # noqa: E731
        s.topic.removeprefix("keten.out.")
        for s in t.records(missed)
        if s.topic.startswith("keten.out.") and s.header("ce_id") == esc["escalatie_id"]
    }
    bus.tap.wait(lambda t: delivered(t) == set(timer.notify), message=f"{timer.name} escalation delivered")


def test_a_non_acute_melding_on_the_thursday_before_easter(bus: IsolatedBus) -> None:
    """Easter Sunday 2058 is 14 April. Received Thursday 11 April: Friday 12 counts (Goede
    Vrijdag is a working day by default), Easter Monday 15 does not; Tuesday 16 to Friday 19
    are days two to five, so the term ends at the end of Friday 19 April (21:59:59.999 UTC)."""
    thursday = dt.datetime(2058, 4, 11, 10, 0, tzinfo=dt.UTC)
    assert thursday.weekday() == 3
    zaak = case_ref("PASEN")
    publish(
        bus, zaak, [("veilig-thuis", "Melding", {"stap": "ontvangen", "acuut": False, "tijdstip": thursday})]
    )
    bus.clock.tick(dt.datetime(2058, 4, 19, 21, 0, tzinfo=dt.UTC))
    assert [e for e in escalations(bus.tap, zaak) if e["timer"] == "vt-veiligheidsbeoordeling"] == []
    bus.clock.tick(dt.datetime(2058, 4, 19, 22, 0, tzinfo=dt.UTC))
    (esc,) = [e for e in escalations(bus.tap, zaak) if e["timer"] == "vt-veiligheidsbeoordeling"]
    assert esc["deadline"] == dt.datetime(2058, 4, 19, 21, 59, 59, 999000, tzinfo=dt.UTC)
