"""The synthetic case generator (`connectors.generator`): valid, synthetic, seeded, and covering
every process of the chain once the simulated partners react."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections import Counter, defaultdict

import pytest

from connectors.generator import Mix, generate
from connectors.partners import Action, agents
from schemas.registry import PARTNER_FAMILIES, family
from streams.validation import HUISVERBOD_MAX
from tests.unit.test_partners import START, problem_with, simulate

UTC = dt.UTC
SPAN = dt.timedelta(days=14)
CASES = 40
SEED = 7


@pytest.fixture(scope="module")
def actions() -> list[Action]:
    return generate(CASES, SEED, START, SPAN)


def by_case(actions: list[Action]) -> dict[str, list[Action]]:
    cases: dict[str, list[Action]] = defaultdict(list)
    for a in actions:
        cases[a.zaak].append(a)
    return cases


def meldingen(actions: list[Action]) -> list[Action]:
    return [a for a in actions if a.family == "Melding"]


# ── Valid input for the bus ──────────────────────────────────────────────────────────────────


def test_every_generated_datum_is_accepted(actions: list[Action]) -> None:
    assert [p for a in actions if (p := problem_with(a))] == []


def test_every_producer_is_allowed(actions: list[Action]) -> None:
    for a in actions:
        assert a.partner in family(a.family).producers[a.stap], (a.partner, a.family, a.stap)


def test_actions_are_in_time_order_with_unique_ids(actions: list[Action]) -> None:
    assert [a.at for a in actions] == sorted(a.at for a in actions)
    assert len({a.ce_id for a in actions}) == len(actions)


# ── The cases ───────────────────────────────────────────────────────────────────────────────


def test_cases_are_distinct_and_each_opens_with_a_melding_within_the_span(actions: list[Action]) -> None:
    cases = by_case(actions)
    assert len(cases) == CASES
    for zaak, events in cases.items():
        [melding] = [a for a in events if a.family == "Melding"]
        assert START <= melding.at < START + SPAN, zaak
        assert min(a.at for a in events) == melding.at


def test_the_mix_decides_how_many_cases_have_each_feature(actions: list[Action]) -> None:
    m = meldingen(actions)
    steps = Counter((a.family, a.stap) for a in actions)
    devices = {a.zaak for a in actions if a.family == "SlachtofferdeviceAlert"}
    assert sum(a.datum["acuut"] for a in m) == 8
    assert sum(a.datum["schadelijke_praktijk"] for a in m) == 2
    assert sum(bool(a.datum["signalen"]) for a in m) == 6
    assert sum(a.datum["minderjarigen_betrokken"] for a in m) == 16
    assert sum(a.datum["bron"] == "zorgmelding_politie" for a in m) == 16
    assert steps[("Huisverbod", "opgelegd")] == 6
    assert steps[("Zsm", "zaak_aangemeld")] == 10
    assert len(devices) == 4


def test_the_generator_opens_four_families_and_the_partners_make_all_six(actions: list[Action]) -> None:
    assert {a.family for a in actions} == {"Melding", "Huisverbod", "Zsm", "SlachtofferdeviceAlert"}
    run = simulate(actions, agents(SEED), horizon=dt.timedelta(days=30))
    assert run.problems == []
    assert {a.family for a in run.published} == set(PARTNER_FAMILIES)


def test_zorgmeldingen_come_from_the_police(actions: list[Action]) -> None:
    for a in meldingen(actions):
        assert (a.partner == "politie") == (a.datum["bron"] == "zorgmelding_politie")


def test_egg_cases_name_a_harmful_practice_and_get_no_huisverbod(actions: list[Action]) -> None:
    egg = [a for a in meldingen(actions) if a.datum["schadelijke_praktijk"]]
    assert egg
    cases = by_case(actions)
    for a in egg:
        assert {"eergerelateerd_geweld", "huwelijksdwang"} & set(a.datum["vormen_van_geweld"])
        assert not [x for x in cases[a.zaak] if x.family == "Huisverbod"]


def test_a_huisverbod_is_imposed_on_an_adult_for_ten_days(actions: list[Action]) -> None:
    for a in actions:
        if a.family == "Huisverbod":
            assert (a.partner, a.stap) == ("gemeente", "opgelegd")
            assert a.datum["pleger_meerderjarig"] is True
            assert a.datum["ingangsdatum"] == a.at
            assert a.datum["einddatum"] - a.datum["ingangsdatum"] == HUISVERBOD_MAX


def test_device_alarms_name_their_kind_and_where(actions: list[Action]) -> None:
    alarms = [a for a in actions if a.family == "SlachtofferdeviceAlert"]
    assert {a.datum["soort"] for a in alarms} <= {"noodknop", "nabijheid", "zone"}
    assert len({a.datum["alarm_id"] for a in alarms}) == len(alarms)
    for a in alarms:
        assert a.partner == "alarmcentrale" and a.datum["locatie"] is not None
        assert (a.datum["afstand_m"] is not None) == (a.datum["soort"] == "nabijheid")


def test_some_plegers_recur_so_the_radar_sees_a_pattern(actions: list[Action]) -> None:
    cases_per_person: dict[str, set[str]] = defaultdict(set)
    for a in meldingen(actions):
        for p in a.datum["persoon_refs"]:
            cases_per_person[p["persoon_ref"]].add(a.zaak)
    assert max(len(z) for z in cases_per_person.values()) >= 3
    run = simulate(actions, agents(SEED), horizon=dt.timedelta(days=30))
    assert [e for e in run.escalations if e["stap"] == "patroon"]


# ── Synthetic values only ──────────────────────────────────────────────────────────────────


def test_every_value_is_synthetic(actions: list[Action]) -> None:
    for a in actions:
        assert re.fullmatch(r"ZAAK-[0-9A-F]{12}", a.zaak)
        for p in a.datum.get("persoon_refs", []):
            assert re.fullmatch(r"P-[0-9a-f]{16}", p["persoon_ref"])
        adres = a.datum.get("woonadres")
        assert adres is None or re.fullmatch(r"Synthetischestraat \d+, Demodorp", adres)


# ── Determinism ───────────────────────────────────────────────────────────────────────────


def test_same_arguments_same_actions(actions: list[Action]) -> None:
    assert generate(CASES, SEED, START, SPAN) == actions


def test_another_seed_other_cases(actions: list[Action]) -> None:
    other = generate(CASES, SEED + 1, START, SPAN)
    assert not {a.zaak for a in other} & {a.zaak for a in actions}
    assert not {a.ce_id for a in other} & {a.ce_id for a in actions}


def test_the_span_and_start_move_the_cases() -> None:
    later = START + dt.timedelta(days=100)
    for a in meldingen(generate(20, SEED, later, dt.timedelta(days=1))):
        assert later <= a.at < later + dt.timedelta(days=1)


@pytest.mark.parametrize("cases", [0, 1, 2, 3, 7])
def test_small_runs(cases: int) -> None:
    actions = generate(cases, SEED, START)
    assert len(by_case(actions)) == cases
    assert [p for a in actions if (p := problem_with(a))] == []


def test_a_share_outside_zero_and_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Mix(acute_share=1.5)
    with pytest.raises(ValueError):
        dataclasses.replace(Mix(), zsm_share=-0.1)


def test_a_mix_of_only_one_feature() -> None:
    nothing = Mix(**{f.name: 0.0 for f in dataclasses.fields(Mix)})
    actions = generate(10, SEED, START, mix=dataclasses.replace(nothing, huisverbod_share=1.0))
    assert Counter(a.family for a in actions) == {"Melding": 10, "Huisverbod": 10}
    assert all(a.partner == "veilig-thuis" and not a.datum["acuut"] for a in meldingen(actions))


def test_a_national_day_is_generated_quickly() -> None:
    # ~100,000 meldingen a year is ~300 a day (DOMAIN.md Volumes)
    began = time.perf_counter()
    actions = generate(300, SEED, START, dt.timedelta(days=1))
    assert len(by_case(actions)) == 300
    assert time.perf_counter() - began < 5
