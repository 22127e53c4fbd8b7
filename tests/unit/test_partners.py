"""The simulated partners (`connectors.partners`), driven through the real policy, codec and timer
core without a broker: `simulate` plays a generated run the way the demo does, in virtual time.

What a partner publishes must be something the bus accepts (encodes, passes the router's
checks, from an allowed producer); the same deliveries must give the same actions in any order;
and with the default profiles the deadlines must be met mostly and missed sometimes.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.generator import generate
from connectors.partners import (
    DEFAULT_PROFILES,
    Action,
    Delivered,
    PartnerAgent,
    Profile,
    action_id,
    agents,
    never,
    rng_for,
)
from schemas import default_codec
from schemas.registry import BUS, PARTNER_FAMILIES, PARTNERS, Family, family, resolve_type
from streams import policy as policy_mod
from streams.deadlines import load_termijnen
from streams.settings import Settings
from streams.timers import Escalation, RadarBook, TimerBook, from_ms, to_ms
from streams.validation import HUISVERBOD_MAX, HUISVERBOD_MAX_VERLENGD, check_event

SETTINGS = Settings()
POLICY = policy_mod.load(SETTINGS.policy_file)
TERMIJNEN = load_termijnen(SETTINGS.termijnen_file)
CODEC = default_codec()
ESCALATIE = family("Escalatie")
UTC = dt.UTC
START = dt.datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday, as in the demo
SEED = 7  # the demo's seed
HORIZON = dt.timedelta(days=420)  # past the 12-month monitoring moments


# ── A broker-free run of the chain ─────────────────────────────────────────────────────────


@dataclass(repr=False)
class Run:
    published: list[Action] = field(default_factory=list)
    own: list[Action] = field(default_factory=list)  # what each partner was told it published
    deliveries: list[tuple[str, Delivered, dt.datetime]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    started: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)  # (timer, key)
    problems: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Run({len(self.published)} published, {len(self.escalations)} escalations)"

    def expired(self) -> Counter[str]:
        return Counter(e["timer"] for e in self.escalations if e["stap"] == "termijn_verlopen")

    def starts(self) -> Counter[str]:
        return Counter(timer for timer, _ in self.started)


def ce_type_of(action: Action) -> str:
    return family(action.family).ce_type(action.stap)


def problem_with(action: Action) -> str | None:
    """Why the bus would refuse `action`, or None."""
    fam = family(action.family)
    try:
        CODEC.encode(action.family, action.datum)
        check_event(action.partner, action.partner, ce_type_of(action), action.zaak, fam, action.datum)
    except Exception as exc:
        return f"{action.partner} {action.family}.{action.stap} {action.zaak}: {exc!r}"
    if action.datum["tijdstip"] != action.at:
        return f"{action.family}.{action.stap}: tijdstip {action.datum['tijdstip']} is not at {action.at}"
    if action.at.tzinfo is None or action.at.microsecond % 1000:
        return f"{action.family}.{action.stap}: at {action.at} is not aware UTC in milliseconds"
    return None


def simulate(
    initial: Iterable[Action], partners: Mapping[str, PartnerAgent], horizon: dt.timedelta = HORIZON
) -> Run:
    """Publish, route by the policy, run the timers and deliver, in virtual-time order."""
    run = Run()
    book, radar = TimerBook(TERMIJNEN), RadarBook(TERMIJNEN)
    queue: list[tuple[dt.datetime, str, Action]] = []
    seen: set[str] = set()

    def schedule(actions: Iterable[Action], now: dt.datetime) -> None:
        for a in actions:
            if a.at < now:
                run.problems.append(f"{a.partner} scheduled {a.family}.{a.stap} in the past")
            heapq.heappush(queue, (a.at, a.ce_id, a))

    def deliver(
        ce_id: str, fam: Family, ce_type: str, record: dict[str, Any], producer: str, now: dt.datetime
    ) -> None:
        recipients = [p for p in PARTNERS if p != producer]
        for partner, decision in POLICY.decide(fam, ce_type, record, recipients).items():
            if not decision.allowed:
                continue
            data = CODEC.encode_projected(fam, decision.fields, record)
            _, got = CODEC.decode(data, resolve=True, fields_hint=decision.fields)
            delivered = Delivered(ce_type, ce_id, got, decision.grondslag, decision.doel)
            run.deliveries.append((partner, delivered, now))
            schedule(partners[partner].react(delivered, now), now)

    def escalate(fired: list[Escalation], now: dt.datetime) -> None:
        for esc in fired:
            run.escalations.append(esc.datum)
            _, record = CODEC.decode(CODEC.encode(ESCALATIE.name, esc.datum))
            deliver(esc.id, ESCALATIE, ESCALATIE.ce_type(esc.stap), record, BUS, now)

    def fire_until(now_ms: int) -> None:
        while (due := book.next_due(0)) is not None and due <= now_ms:
            fired = book.due(0, due)
            escalate(fired, from_ms(due))
            book.confirm(fired)

    schedule(initial, START)
    end = START + horizon
    while queue and queue[0][0] <= end:
        at, _, action = heapq.heappop(queue)
        fire_until(to_ms(at) - 1)
        problem = problem_with(action) or (
            f"duplicate ce_id {action.ce_id}" if action.ce_id in seen else None
        )
        if problem:
            run.problems.append(problem)
            continue
        seen.add(action.ce_id)
        run.published.append(action)
        run.own.append(action)
        schedule(partners[action.partner].own_event(action), at)
        fam, ce_type = family(action.family), ce_type_of(action)
        _, record = CODEC.decode(CODEC.encode(action.family, action.datum))
        deliver(action.ce_id, fam, ce_type, record, action.partner, at)
        for timer in TERMIJNEN.timers_started_by(ce_type, record):
            run.started.add((timer.name, timer.key(record)))
        fired = book.on_event(ce_type, record, action.ce_id, 0)
        escalate(fired, at)
        book.confirm(fired)
        for pattern, person, rol in radar.observations(ce_type, record):
            esc, key, state = radar.observe(pattern, person, action.zaak, at, action.ce_id, rol)
            radar.store[key] = state
            if esc is not None:
                escalate([esc], at)
    fire_until(to_ms(end))
    return run


@pytest.fixture(scope="module")
def run() -> Run:
    return simulate(generate(40, SEED, START), agents(SEED))


def replay(partners: Mapping[str, PartnerAgent], own: list[Action], deliveries: list[Any]) -> list[Action]:
    """Tell each partner what it published, then hand over `deliveries` in the given order."""
    out: list[Action] = []
    for a in own:
        out += partners[a.partner].own_event(a)
    for partner, delivered, now in deliveries:
        out += partners[partner].react(delivered, now)
    return out


def by_id(actions: Iterable[Action]) -> dict[str, Action]:
    return {a.ce_id: a for a in actions}


# ── What partners publish is accepted by the bus ───────────────────────────────────────────


def test_every_action_of_a_run_is_accepted(run: Run) -> None:
    assert run.problems == []
    generated = len(generate(40, SEED, START))
    assert len(run.published) > 3 * generated  # the partners did most of the work


def test_every_producer_is_allowed(run: Run) -> None:
    for a in run.published:
        fam, step = resolve_type(ce_type_of(a))
        assert a.partner in fam.producers[step], (a.partner, a.family, a.stap)


def test_every_partner_reacts(run: Run) -> None:
    generated = {a.ce_id for a in generate(40, SEED, START)}
    reacting = {a.partner for a in run.published if a.ce_id not in generated}
    assert reacting == set(PARTNERS)


def test_every_lifecycle_step_occurs(run: Run) -> None:
    occurred = {(a.family, a.stap) for a in run.published}
    missing = [(f, s) for f in PARTNER_FAMILIES for s in family(f).steps if (f, s) not in occurred]
    assert missing == []


def test_default_profiles_miss_every_timer_sometimes_and_meet_it_mostly(run: Run) -> None:
    starts, expired = run.starts(), run.expired()
    for timer in TERMIJNEN.timers:
        assert starts[timer.name] >= 2, f"{timer.name} never ran"
        assert expired[timer.name] >= 1, f"{timer.name} was never missed ({starts[timer.name]} started)"
        assert expired[timer.name] <= starts[timer.name] / 2, (
            f"{timer.name}: {expired[timer.name]} of {starts[timer.name]}"
        )


def test_patterns_fire_and_lead_to_actieoverleg(run: Run) -> None:
    patterns = Counter(e["timer"] for e in run.escalations if e["stap"] in ("risicosignaal", "patroon"))
    assert patterns["rode-vlaggen"] >= 1
    assert patterns["radar"] >= 1
    steps = Counter(a.stap for a in run.published if a.family == "Actieoverleg")
    assert steps["aangevraagd"] >= 1 and steps["gehouden"] >= 1 and steps["actie_afgerond"] >= 1


def test_reactions_keep_the_fields_the_next_step_needs(run: Run) -> None:
    alarms = {
        a.datum["alarm_id"]: a
        for a in run.published
        if a.family == "SlachtofferdeviceAlert" and a.stap == "alarm"
    }
    for a in run.published:
        if a.family == "SlachtofferdeviceAlert" and a.stap != "alarm":
            assert a.datum["alarm_id"] in alarms
            assert a.zaak == alarms[a.datum["alarm_id"]].zaak
        if a.family == "SlachtofferdeviceAlert" and a.stap == "bevestigd":
            soort = alarms[a.datum["alarm_id"]].datum["soort"]
            assert a.datum["bevestigd_door"] == (
                "reclassering" if soort in ("nabijheid", "sabotage") else "politie"
            )
        if a.family == "Zsm" and a.stap == "advies":
            assert a.datum["advies_van"] == a.partner.replace("-", "_")
    opgelegd = {a.zaak: a.datum for a in run.published if a.family == "Huisverbod" and a.stap == "opgelegd"}
    verlengd = [a for a in run.published if a.family == "Huisverbod" and a.stap == "verlengd"]
    assert verlengd
    for a in verlengd:
        assert a.datum["ingangsdatum"] == opgelegd[a.zaak]["ingangsdatum"]
        assert a.datum["einddatum"] == a.datum["ingangsdatum"] + HUISVERBOD_MAX_VERLENGD
        assert a.datum["persoon_refs"] == opgelegd[a.zaak]["persoon_refs"]


# ── Determinism ───────────────────────────────────────────────────────────────────────────


def test_same_seed_same_actions_in_any_delivery_order(run: Run) -> None:
    forward = replay(agents(SEED), run.own, run.deliveries)
    shuffled = list(run.deliveries)
    random.Random(1).shuffle(shuffled)
    backward = replay(agents(SEED), run.own, shuffled)
    assert len(forward) > 100
    assert by_id(forward) == by_id(backward)
    assert len(by_id(forward)) == len(forward)  # no two reactions share an id


def test_a_run_is_reproducible() -> None:
    first = simulate(generate(12, 3, START), agents(3))
    again = simulate(generate(12, 3, START), agents(3))
    assert first.published == again.published


def test_another_seed_gives_other_actions(run: Run) -> None:
    ours = by_id(replay(agents(SEED), run.own, run.deliveries))
    theirs = by_id(replay(agents(SEED + 1), run.own, run.deliveries))
    assert not set(ours) & set(theirs)
    assert sorted(a.at for a in ours.values()) != sorted(a.at for a in theirs.values())


def test_randomness_does_not_depend_on_the_process() -> None:
    # str seeds are hashed with SHA-512, ids are uuid5: these values hold in every process
    assert rng_for(7, "politie", "ZAAK-1", "x", "contactadres").random() == 0.3503334421784201
    assert action_id(7, "ZAAK-1", "Melding", "ontvangen", "x") == "70dfd9c5-3386-5021-94d2-ae0857dc7570"


# ── Profiles ──────────────────────────────────────────────────────────────────────────────


def test_miss_rate_one_means_no_reaction(run: Run) -> None:
    assert replay(agents(SEED, never()), run.own, run.deliveries) == []


def test_a_partial_override_keeps_the_other_defaults(run: Run) -> None:
    silent_om = agents(SEED, {"om": {"zsm_beslissing": Profile(dt.timedelta(hours=1), miss_rate=1.0)}})
    actions = replay(silent_om, run.own, run.deliveries)
    assert not [a for a in actions if a.family == "Zsm" and a.stap == "beslissing"]
    assert [a for a in actions if a.family == "Zsm" and a.stap == "advies"]


@pytest.mark.parametrize(
    "profiles",
    [{"justitie": {}}, {"om": {"zsm_besluit": Profile(dt.timedelta(hours=1))}}],
    ids=["unknown partner", "unknown reaction"],
)
def test_unknown_profile_names_are_refused(profiles: dict[str, dict[str, Profile]]) -> None:
    with pytest.raises(ValueError):
        agents(SEED, profiles)


@pytest.mark.parametrize(
    "kwargs",
    [{"mean_delay": dt.timedelta(0)}, {"sigma": -0.1}, {"miss_rate": 1.5}],
    ids=["delay", "sigma", "miss"],
)
def test_impossible_profiles_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Profile(**{"mean_delay": dt.timedelta(hours=1), **kwargs})


def test_delays_average_the_mean_delay() -> None:
    profile = Profile(dt.timedelta(hours=4), sigma=0.4, miss_rate=0.1)
    rng = random.Random("delays")
    draws = [profile.draw(rng) for _ in range(20_000)]
    made = [d.total_seconds() for d in draws if d is not None]
    assert len(made) / len(draws) == pytest.approx(0.9, abs=0.01)
    assert sum(made) / len(made) == pytest.approx(4 * 3600, rel=0.03)


def test_every_partner_has_default_profiles() -> None:
    assert set(DEFAULT_PROFILES) == set(PARTNERS)
    assert set(agents(SEED)) == set(PARTNERS)


# ── Single reactions ──────────────────────────────────────────────────────────────────────

T = dt.datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
ALWAYS = {
    p: {n: Profile(pr.mean_delay, pr.sigma, 0.0) for n, pr in r.items()} for p, r in DEFAULT_PROFILES.items()
}
PERSONS = [
    {"persoon_ref": "P-0000000000000001", "rol": "slachtoffer", "minderjarig": False},
    {"persoon_ref": "P-0000000000000002", "rol": "pleger", "minderjarig": False},
    {"persoon_ref": "P-0000000000000003", "rol": "kind", "minderjarig": True},
]


def delivered(family_name: str, stap: str, ce_id: str = "e-1", **fields: Any) -> Delivered:
    """A record as an outbox hands it over: decoded with the full schema, defaults filled."""
    datum = {"stap": stap, "zaak_ref": "ZAAK-TEST", "tijdstip": T, **fields}
    _, record = CODEC.decode(CODEC.encode(family_name, datum))
    return Delivered(family(family_name).ce_type(stap), ce_id, record, "grondslag", "doel")


def test_alarms_are_acknowledged_by_whoever_must_act() -> None:
    crew = agents(SEED, ALWAYS)
    for soort, by in [("noodknop", "politie"), ("zone", "politie"), ("nabijheid", "reclassering")]:
        alarm = delivered("SlachtofferdeviceAlert", "alarm", alarm_id=f"A-{soort}", soort=soort)
        for partner in ("politie", "reclassering"):
            actions = crew[partner].react(alarm, T)
            if partner != by:
                assert actions == []
                continue
            assert [a.stap for a in actions] == ["bevestigd", "opgevolgd"]
            assert {a.datum["alarm_id"] for a in actions} == {f"A-{soort}"}
            assert actions[0].datum["bevestigd_door"] == by
            assert T < actions[0].at < actions[1].at


def test_gemeente_extends_from_its_own_huisverbod_or_from_the_reminder() -> None:
    opgelegd = Action(
        T,
        "gemeente",
        "Huisverbod",
        {
            "stap": "opgelegd",
            "zaak_ref": "ZAAK-TEST",
            "tijdstip": T,
            "ingangsdatum": T,
            "einddatum": T + HUISVERBOD_MAX,
            "pleger_meerderjarig": True,
            "persoon_refs": PERSONS,
        },
        "hv-1",
    )
    deadline = dt.datetime(2026, 3, 13, 10, 0, tzinfo=UTC)  # 10 days later, same Dutch clock time
    decisions: Counter[str] = Counter()
    for seed in range(30):
        reminder = delivered(
            "Escalatie",
            "herinnering",
            ce_id=f"esc-{seed}",
            escalatie_id="x",
            timer="huisverbod-verlenging",
            deadline=deadline,
            aanleiding_event_id="hv-1",
        )
        knows, forgot = agents(seed, ALWAYS)["gemeente"], agents(seed, ALWAYS)["gemeente"]
        assert knows.own_event(opgelegd) == []
        [told] = knows.react(reminder, T + dt.timedelta(days=8))
        [guessed] = forgot.react(reminder, T + dt.timedelta(days=8))
        decisions[told.stap] += 1
        assert told.stap == guessed.stap and told.datum["ingangsdatum"] == guessed.datum["ingangsdatum"] == T
        assert told.datum["persoon_refs"] == PERSONS and guessed.datum["persoon_refs"] == []
        if told.stap == "verlengd":
            assert told.datum["einddatum"] == T + HUISVERBOD_MAX_VERLENGD
            [einde] = knows.own_event(told)
            assert (einde.stap, einde.datum["einddatum"]) == ("beeindigd", T + HUISVERBOD_MAX_VERLENGD)
            assert einde.at >= T + HUISVERBOD_MAX_VERLENGD
        else:
            assert told.datum["einddatum"] == T + HUISVERBOD_MAX
    assert set(decisions) == {"verlengd", "beeindigd", "ingetrokken"}


def test_gemeente_ignores_other_reminders() -> None:
    reminder = delivered("Escalatie", "herinnering", escalatie_id="x", timer="vt-veiligheidsbeoordeling")
    assert agents(SEED, ALWAYS)["gemeente"].react(reminder, T) == []


def _melding(egg: bool) -> Action:
    datum = {
        "stap": "ontvangen",
        "zaak_ref": "ZAAK-TEST",
        "tijdstip": T,
        "persoon_refs": PERSONS,
        "schadelijke_praktijk": egg,
        "minderjarigen_betrokken": True,
        "signalen": ["aanhoudende_stalking"],
    }
    return Action(T, "veilig-thuis", "Melding", datum, "m-1")


@pytest.mark.parametrize("egg", [False, True], ids=["open case", "EGG case"])
def test_veilig_thuis_invites_raad_and_reclassering_only_outside_houd_het_klein(egg: bool) -> None:
    escalatie = delivered(
        "Escalatie",
        "risicosignaal",
        escalatie_id="x",
        timer="rode-vlaggen",
        voorstel="actieoverleg",
        persoon_refs=PERSONS,
        signalen=["aanhoudende_stalking"],
    )
    vt = agents(SEED, ALWAYS)["veilig-thuis"]
    [unknown] = vt.react(escalatie, T)
    assert unknown.datum["deelnemers"] == ["politie", "veilig_thuis", "om"]
    vt.own_event(_melding(egg))
    [known] = vt.react(escalatie, T)
    assert known.stap == "aangevraagd" and known.datum["schadelijke_praktijk"] is egg
    expected = (
        ["politie", "veilig_thuis", "om"]
        if egg
        else ["politie", "veilig_thuis", "om", "raad", "reclassering"]
    )
    assert known.datum["deelnemers"] == expected


def test_veilig_thuis_ignores_an_escalation_without_voorstel_actieoverleg() -> None:
    escalatie = delivered(
        "Escalatie", "termijn_verlopen", escalatie_id="x", timer="vt-acuut", voorstel="opvolgen"
    )
    assert agents(SEED, ALWAYS)["veilig-thuis"].react(escalatie, T) == []


def test_the_egg_flag_travels_with_the_zsm_decision() -> None:
    aangemeld = delivered(
        "Zsm", "zaak_aangemeld", persoon_refs=PERSONS, schadelijke_praktijk=True, minderjarigen_betrokken=True
    )
    [beslissing] = agents(SEED, ALWAYS)["om"].react(aangemeld, T)
    assert beslissing.datum["schadelijke_praktijk"] is True
    decision = POLICY.decide(family("Zsm"), beslissing.ce_type, beslissing.datum, ["raad", "reclassering"])
    assert not any(d.allowed for d in decision.values())


def test_owners_complete_their_actieoverleg_decisions() -> None:
    besluiten = [
        {"besluit_id": "B-1", "soort": "veiligheidsplan", "eigenaar": "veilig_thuis", "uiterlijk": T},
        {"besluit_id": "B-2", "soort": "aanhouding", "eigenaar": "politie", "uiterlijk": T},
        {"besluit_id": "B-3", "soort": "slachtofferdevice", "eigenaar": "om", "uiterlijk": T},
    ]
    gehouden = delivered(
        "Actieoverleg", "gehouden", besluiten=besluiten, deelnemers=["politie", "veilig_thuis", "om"]
    )
    crew = agents(SEED, ALWAYS)
    done = {
        p: [a.datum["besluit_id"] for a in crew[p].react(gehouden, T)] for p in ("veilig-thuis", "om", "raad")
    }
    assert done == {"veilig-thuis": ["B-1"], "om": ["B-3"], "raad": []}
    own = Action(T, "politie", "Actieoverleg", gehouden.record, "g-1")
    assert [a.datum["besluit_id"] for a in crew["politie"].own_event(own)] == ["B-2"]
