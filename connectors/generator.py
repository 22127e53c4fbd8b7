"""Synthetic cases for the simulated chain: the events that open each case (meldingen,
huisverboden, device alarms, ZSM registrations), spread over a period. The simulated partners
(`connectors.partners`) do the rest.

Everything is synthetic and seeded: persons are `P-<hex>` pseudonyms, cases `ZAAK-<hex>`,
addresses "Synthetischestraat <n>, Demodorp", positions random points in a box; no real name,
BSN or address ever appears. How many cases get each feature is fixed by `Mix` (shares are
rounded to whole cases); which cases get it, and every value, come from the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from connectors.partners import Action, make_action, pick, rng_for, to_millis
from schemas.registry import family
from streams.validation import HUISVERBOD_MAX

RISICOSIGNALEN: tuple[str, ...] = tuple(family("Melding").field("signalen").avro_type["items"]["symbols"])
EGG_VORMEN = ("eergerelateerd_geweld", "huwelijksdwang")
EGG_EXTRA = ("achterlating", "vgv")
#: Each recurring person is the pleger in this many cases, so the radar (3 meldingen about one
#: person within 12 months, policy/termijnen.yaml) sees a pattern.
RECURRENCES = 3
#: One recurring person per this many cases (at least one from 3 cases on).
CASES_PER_RECURRING = 20


@dataclass(frozen=True)
class Mix:
    """What share of the cases has each feature (a fraction of all cases).

    The shares over-represent the rare processes on purpose, so that a run of tens of cases
    exercises every flow; national volumes (DOMAIN.md "Volumes") would bury them:
    - acute_share: meldingen judged acutely unsafe at intake. *Assumption*: no source gives a
      share; acute meldingen are the ones Samen op in Acuut is for (seed 002).
    - children_share: cases with minors in the home. *Assumption*; children count as victims
      when they witness violence (seed 002).
    - egg_share: harmful practices (EGG, huwelijksdwang). Nationally ~1,500 of 100,000+
      meldingen a year (~1.5 %, seed 001; DOMAIN.md Volumes); raised so a 40-case run has two.
    - red_flag_share: meldingen with a red flag for femicide (seed 002). *Assumption*.
    - huisverbod_share: cases with a tijdelijk huisverbod. Never in an EGG case: with harmful
      practices the threat comes from the family, and seed 001 advises restraint with it.
    - device_share: cases where the victim carries a device (AWARE or a slachtofferdevice
      linked to an enkelband). Nationally rare (seed 002 pilot, 004); raised to cover alarms.
    - zsm_share: cases with a suspect at the ZSM table. OM intake ~11,000 suspects a year
      (004) against 100,000+ meldingen, so ~10 %; raised.
    - zorgmelding_share: meldingen that are zorgmeldingen by the police. *Assumption*: the
      police are a main source of meldingen (shared/domain/domain_research.md §1.6).
    """

    acute_share: float = 0.2
    children_share: float = 0.4
    egg_share: float = 0.05
    red_flag_share: float = 0.15
    huisverbod_share: float = 0.15
    device_share: float = 0.1
    zsm_share: float = 0.25
    zorgmelding_share: float = 0.4

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be a fraction between 0 and 1, not {value}")


DEFAULT_MIX = Mix()
DEFAULT_SPAN = timedelta(days=14)


@dataclass
class _Case:
    zaak: str
    t0: datetime
    slachtoffer: str
    pleger: str
    kinderen: list[str]
    egg: bool = False
    acuut: bool = False
    red_flags: bool = False
    zorgmelding: bool = False
    huisverbod: bool = False
    device: bool = False
    zsm: bool = False

    def persons(self) -> list[dict[str, Any]]:
        return [
            {"persoon_ref": self.slachtoffer, "rol": "slachtoffer", "minderjarig": False},
            {"persoon_ref": self.pleger, "rol": "pleger", "minderjarig": False},
            *({"persoon_ref": k, "rol": "kind", "minderjarig": True} for k in self.kinderen),
        ]


def _person(rng: random.Random) -> str:
    return f"P-{rng.getrandbits(64):016x}"


def _address(rng: random.Random) -> str:
    return f"Synthetischestraat {rng.randint(1, 299)}, Demodorp"


def generate(
    cases: int, seed: int, start: datetime, span: timedelta = DEFAULT_SPAN, mix: Mix = DEFAULT_MIX
) -> list[Action]:
    """The opening events of `cases` synthetic cases, starting within [start, start + span),
    in time order. Same arguments, same actions."""
    if cases < 0:
        raise ValueError("cases must not be negative")
    start = to_millis(start)
    plan = rng_for(seed, "generator", "plan")
    everyone = list(range(cases))

    def chosen(share: float, pool: list[int]) -> set[int]:
        return set(plan.sample(pool, min(len(pool), round(share * cases))))

    egg = chosen(mix.egg_share, everyone)
    features = {
        "acuut": chosen(mix.acute_share, everyone),
        "red_flags": chosen(mix.red_flag_share, everyone),
        "zorgmelding": chosen(mix.zorgmelding_share, everyone),
        "huisverbod": chosen(mix.huisverbod_share, [i for i in everyone if i not in egg]),
        "device": chosen(mix.device_share, everyone),
        "zsm": chosen(mix.zsm_share, everyone),
    }
    children = chosen(mix.children_share, everyone)
    recurring_count = max(1, cases // CASES_PER_RECURRING) if cases >= RECURRENCES else 0
    slots = plan.sample(everyone, recurring_count * RECURRENCES)
    pleger_of: dict[int, str] = {}
    for n in range(0, len(slots), RECURRENCES):  # each recurring pleger in RECURRENCES cases
        recurring = _person(plan)
        for i in slots[n : n + RECURRENCES]:
            pleger_of[i] = recurring

    actions: list[Action] = []
    seen: set[str] = set()
    for i in everyone:
        rng = rng_for(seed, "generator", "case", i)
        zaak = f"ZAAK-{rng.getrandbits(48):012X}"
        while zaak in seen:
            zaak = f"ZAAK-{rng.getrandbits(48):012X}"
        seen.add(zaak)
        case = _Case(
            zaak=zaak,
            t0=to_millis(start + span * rng.random()),
            slachtoffer=_person(rng),
            pleger=pleger_of.get(i) or _person(rng),
            kinderen=[_person(rng) for _ in range(rng.randint(1, 3))] if i in children else [],
            egg=i in egg,
            **{name: i in members for name, members in features.items()},
        )
        actions += _case_actions(seed, case, span, rng)
    return sorted(actions, key=lambda a: (a.at, a.ce_id))


def _case_actions(seed: int, case: _Case, span: timedelta, rng: random.Random) -> list[Action]:
    woonadres = _address(rng)
    minors = bool(case.kinderen)
    vormen = _vormen(rng, case.egg, minors)
    signalen = sorted(rng.sample(RISICOSIGNALEN, rng.randint(1, 2))) if case.red_flags else []
    out = [_melding(seed, case, rng, woonadres, vormen, signalen)]
    if case.huisverbod:
        at = to_millis(case.t0 + timedelta(hours=rng.uniform(1, 8)))
        fields = {
            "persoon_refs": _pleger_first(case),
            "minderjarigen_betrokken": minors,
            "ingangsdatum": at,  # with immediate effect
            "einddatum": at + HUISVERBOD_MAX,
            "pleger_meerderjarig": True,
            "woonadres": woonadres,
        }
        out.append(make_action(seed, "gemeente", "Huisverbod", "opgelegd", case.zaak, at, "opgelegd", fields))
    if case.zsm:
        at = case.t0 + timedelta(hours=rng.uniform(1, 12))
        fields = {
            "persoon_refs": _pleger_first(case),
            "vormen_van_geweld": vormen,
            "signalen": signalen,
            "schadelijke_praktijk": case.egg,
            "minderjarigen_betrokken": minors,
        }
        out.append(make_action(seed, "politie", "Zsm", "zaak_aangemeld", case.zaak, at, "aangemeld", fields))
    if case.device:
        out += _alarms(seed, case, span, rng)
    return out


def _pleger_first(case: _Case) -> list[dict[str, Any]]:
    persons = case.persons()
    return [persons[1], persons[0], *persons[2:]]


def _vormen(rng: random.Random, egg: bool, minors: bool) -> list[str]:
    if egg:
        vormen = [rng.choice(EGG_VORMEN)]
        if rng.random() < 0.2:
            vormen.append(rng.choice(EGG_EXTRA))
        return vormen
    main = pick(
        rng,
        {
            "partnergeweld": 0.6,
            "stalking": 0.12,
            "ouderenmishandeling": 0.08,
            "seksueel_geweld": 0.05,
            "overig": 0.05,
            "kindermishandeling": 0.1 if minors else 0.0,
        },
    )
    vormen = [main]
    if minors and main != "kindermishandeling" and rng.random() < 0.5:
        vormen.append("kindermishandeling")
    return vormen


def _melding(
    seed: int, case: _Case, rng: random.Random, woonadres: str, vormen: list[str], signalen: list[str]
) -> Action:
    persons = case.persons()
    if case.zorgmelding:
        partner, bron = "politie", "zorgmelding_politie"
    else:
        partner = "veilig-thuis"
        bron = pick(rng, {"professional": 0.6, "burger": 0.25, "betrokkene": 0.15})
        if bron == "burger":
            persons.append({"persoon_ref": _person(rng), "rol": "melder", "minderjarig": False})
    fields = {
        "persoon_refs": persons,
        "bron": bron,
        "acuut": case.acuut,
        "vormen_van_geweld": vormen,
        "signalen": signalen,
        "schadelijke_praktijk": case.egg,
        "minderjarigen_betrokken": bool(case.kinderen),
        "woonadres": woonadres,
    }
    return make_action(seed, partner, "Melding", "ontvangen", case.zaak, case.t0, "ontvangen", fields)


def _alarms(seed: int, case: _Case, span: timedelta, rng: random.Random) -> list[Action]:
    """2 to 4 signals over the period: an AWARE button (noodknop), or a slachtofferdevice
    linked to the perpetrator's enkelband (nabijheid, zone)."""
    aware = rng.random() < 0.5
    out = []
    times = sorted(case.t0 + timedelta(hours=2) + span * rng.random() for _ in range(rng.randint(2, 4)))
    for at in times:
        soort = "noodknop" if aware else pick(rng, {"nabijheid": 0.7, "zone": 0.3})
        alarm_id = f"A-{rng.getrandbits(40):010x}"
        persons = case.persons()[:1] if soort == "noodknop" else case.persons()[:2]
        fields: dict[str, Any] = {
            "persoon_refs": persons,
            "alarm_id": alarm_id,
            "soort": soort,
            "locatie": {
                "lat": round(52.0 + rng.random() * 0.2, 5),
                "lon": round(5.0 + rng.random() * 0.3, 5),
                "nauwkeurigheid_m": rng.randint(5, 50),
            },
        }
        if soort == "nabijheid":
            fields["afstand_m"] = rng.randint(50, 999)
        out.append(
            make_action(
                seed, "alarmcentrale", "SlachtofferdeviceAlert", "alarm", case.zaak, at, alarm_id, fields
            )
        )
    return out
