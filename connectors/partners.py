"""Simulated chain partners (DESIGN.md §10): one agent per organisation, reacting to what arrives
in its outbox as the organisation would (DOMAIN.md "Partners"), with a response time and a miss
rate per kind of reaction, so that deadlines are met or missed on purpose.

Pure: an agent gets a delivery (or an event it published itself) and the virtual time, and returns
the actions it will publish. No Kafka, no clock. Every random choice comes from a `random.Random`
seeded with (seed, partner, case, triggering event, reaction), never from arrival order, so the
same deliveries give the same actions in any order.

How an orchestrator drives the agents (connectors/demo.py does this):
- `react(delivered, now)` for every record in the partner's outbox. The router never delivers a
  partner's own events back to it, so
- `own_event(action)` for every action published, generated or reacted: a partner also follows
  up what it did itself (Veilig Thuis assesses its own meldingen, the police go on from a Samen
  op in Acuut they started). Call it when the action is published, before later deliveries.

An agent only knows what reached its outbox: a field the policy does not release to it holds
its default there. What each partner lacks, and how it copes, is said at its class. The only
state an agent keeps is what it published itself (`own_event`); deliveries never change it.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from schemas import default_codec
from schemas.envelope import fields_of, header
from schemas.models import model_for, to_avro
from schemas.registry import PARTNERS, family, partner_symbol, resolve_type
from streams.deadlines import AMSTERDAM
from streams.validation import HUISVERBOD_MAX, HUISVERBOD_MAX_VERLENGD

#: Namespace of the ids of simulated events: uuid5(namespace, "seed|zaak|family|stap|discriminator").
ID_NAMESPACE = uuid.UUID("943c328e-c72c-46e9-993b-db935fa627a1")

#: What the burgemeester decides on the reminder before the 10 days run out: extend (Wth art. 9,
#: while the danger lasts), let it end, or revoke it. *Assumption*: no source in shared/domain
#: gives the shares.
BESLUIT_NA_HERINNERING = {"verlengd": 0.5, "beeindigd": 0.4, "ingetrokken": 0.1}

#: Case facts a reaction carries over from the event it answers (when both families have them).
CASE = ("persoon_refs", "schadelijke_praktijk", "risicotaxatie_vastgelegd", "minderjarigen_betrokken")


# -- the interface --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One event a partner publishes at virtual time `at` on its own inbox."""

    at: datetime  # aware UTC, millisecond precision (Avro timestamp-millis)
    partner: str  # the producing partner ("veilig-thuis", ...)
    family: str  # "Melding", ...
    datum: dict[str, Any]  # complete and valid, tijdstip == at
    ce_id: str  # uuid5 of (seed, zaak, family, stap, discriminator)

    @property
    def zaak(self) -> str:
        return str(self.datum["zaak_ref"])

    @property
    def stap(self) -> str:
        return str(self.datum["stap"])

    @property
    def ce_type(self) -> str:
        return family(self.family).ce_type(self.stap)


@dataclass(frozen=True)
class Profile:
    """How one partner performs one kind of reaction.

    The delay is lognormal with mean `mean_delay` and shape `sigma`: most reactions come around
    the mean, a few much later (a backlog). With probability `miss_rate` the partner never
    reacts. For something that happens only sometimes (a violation of a huisverbod) `miss_rate`
    is the chance that it does not happen.
    """

    mean_delay: timedelta
    sigma: float = 0.5
    miss_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.mean_delay <= timedelta(0):
            raise ValueError("mean_delay must be positive")
        if self.sigma < 0:
            raise ValueError("sigma must not be negative")
        if not 0.0 <= self.miss_rate <= 1.0:
            raise ValueError("miss_rate must be between 0 and 1")

    def draw(self, rng: random.Random) -> timedelta | None:
        """The delay of one reaction, or None when the partner does not react."""
        if rng.random() < self.miss_rate:
            return None
        mu = math.log(self.mean_delay.total_seconds()) - self.sigma**2 / 2  # E[delay] == mean_delay
        return timedelta(seconds=rng.lognormvariate(mu, self.sigma))


@dataclass
class Delivered:
    """One record from a partner's outbox, decoded with the full reader schema: fields the
    policy did not release to this partner hold their defaults."""

    ce_type: str
    ce_id: str
    record: dict[str, Any]
    grondslag: str
    doel: str

    @classmethod
    def decode(cls, value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> Delivered:
        """An outbox record as its partner reads it."""
        _, record = default_codec().decode(value, resolve=True, fields_hint=fields_of(headers))
        return cls(
            ce_type=header(headers, "ce_type") or "",
            ce_id=header(headers, "ce_id") or "",
            record=record,
            grondslag=header(headers, "ketenbus_grondslag") or "",
            doel=header(headers, "ketenbus_doel") or "",
        )


class PartnerAgent(Protocol):
    partner: str

    def react(self, delivered: Delivered, now: datetime) -> list[Action]:
        """What the partner does about a record in its outbox, seen at virtual time `now`."""
        ...

    def own_event(self, action: Action) -> list[Action]:
        """What the partner does next after publishing `action` itself."""
        ...


# -- building blocks ------------------------------------------------------------------------------


def action_id(seed: int, zaak: str, family_name: str, stap: str, discriminator: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{seed}|{zaak}|{family_name}|{stap}|{discriminator}"))


def rng_for(seed: int, *parts: object) -> random.Random:
    """A generator for one decision. A str seed is hashed with SHA-512, not with Python's
    salted hash(), so it is the same in every process."""
    return random.Random("|".join(map(str, (seed, *parts))))


def to_millis(t: datetime) -> datetime:
    """`t` in UTC, cut to the millisecond the Avro timestamps keep."""
    if t.tzinfo is None:
        raise ValueError("a naive datetime: virtual time is aware UTC")
    t = t.astimezone(UTC)
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def make_action(
    seed: int,
    partner: str,
    family_name: str,
    stap: str,
    zaak: str,
    at: datetime,
    discriminator: str,
    fields: Mapping[str, Any],
) -> Action:
    """An action with a complete datum: the family's pydantic model validates `fields` and
    fills in every default."""
    if partner not in family(family_name).producers.get(stap, frozenset()):
        raise ValueError(f"{partner} may not produce {family_name}.{stap}")
    at = to_millis(at)
    model = model_for(family_name).model_validate({**fields, "stap": stap, "zaak_ref": zaak, "tijdstip": at})
    return Action(
        at, partner, family_name, to_avro(model), action_id(seed, zaak, family_name, stap, discriminator)
    )


def pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    options = [(k, w) for k, w in weights.items() if w > 0]
    return rng.choices([k for k, _ in options], weights=[w for _, w in options])[0]


def carry(record: Mapping[str, Any], family_name: str, names: Iterable[str]) -> dict[str, Any]:
    """The fields `names` of `record` that `family_name` also has."""
    have = set(family(family_name).field_names)
    return {n: record[n] for n in names if n in have and n in record}


@dataclass(frozen=True)
class _Trigger:
    """What an agent reacts to."""

    zaak: str
    ce_id: str
    record: Mapping[str, Any]
    base: datetime  # reaction delays count from here


Handler = Callable[[_Trigger], list[Action]]


class _Agent:
    partner: str = ""
    ALARMS: tuple[str, ...] = ()  # the device alarms this partner acknowledges

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        self.seed = seed
        self.profiles = dict(profiles)
        self.on_delivery: dict[str, Handler] = {}
        self.on_own: dict[str, Handler] = {}

    @property
    def symbol(self) -> str:
        return partner_symbol(self.partner)

    def react(self, delivered: Delivered, now: datetime) -> list[Action]:
        fam, step = resolve_type(delivered.ce_type)
        handler = self.on_delivery.get(f"{fam.name}.{step}")
        if handler is None:
            return []
        record = delivered.record
        happened = record.get("tijdstip")
        # a partner reacts from when it sees the record (never before the event happened)
        base = max(now, happened) if isinstance(happened, datetime) else now
        return handler(_Trigger(str(record["zaak_ref"]), delivered.ce_id, record, base))

    def own_event(self, action: Action) -> list[Action]:
        self.remember(action)
        handler = self.on_own.get(f"{action.family}.{action.stap}")
        if handler is None:
            return []
        return handler(_Trigger(action.zaak, action.ce_id, action.datum, action.at))

    def remember(self, action: Action) -> None:
        """Keep what the partner itself published and needs later (its own dossier)."""

    def draw(
        self, reaction: str, t: _Trigger, *extra: object, base: datetime | None = None
    ) -> tuple[datetime | None, random.Random]:
        """When the partner does `reaction` (None: never), and a generator for its choices."""
        rng = rng_for(self.seed, self.partner, t.zaak, t.ce_id, reaction, *extra)
        delay = self.profiles[reaction].draw(rng)
        at = None if delay is None else to_millis((base or t.base) + delay)
        return at, rng

    def emit(
        self,
        at: datetime,
        family_name: str,
        stap: str,
        zaak: str,
        discriminator: str,
        fields: Mapping[str, Any],
    ) -> Action:
        # the partner is part of the id: three partners advise on one ZSM registration
        return make_action(
            self.seed, self.partner, family_name, stap, zaak, at, f"{self.partner}|{discriminator}", fields
        )

    # reactions several partners share ----------------------------------------------------------

    def _acties(self, t: _Trigger) -> list[Action]:
        """Actieoverleg gehouden: complete the decisions this partner owns."""
        out = []
        for besluit in t.record.get("besluiten") or ():
            if besluit.get("eigenaar") != self.symbol:
                continue
            at, _ = self.draw("actie", t, besluit["besluit_id"])
            if at is None:
                continue
            fields = carry(t.record, "Actieoverleg", (*CASE, "signalen", "deelnemers"))
            fields["besluit_id"] = besluit["besluit_id"]
            out.append(
                self.emit(
                    at, "Actieoverleg", "actie_afgerond", t.zaak, f"{t.ce_id}|{besluit['besluit_id']}", fields
                )
            )
        return out

    def _zsm_advies(self, t: _Trigger, weights: Mapping[str, float]) -> list[Action]:
        at, rng = self.draw("zsm_advies", t)
        if at is None:
            return []
        fields = carry(t.record, "Zsm", CASE)
        fields.update(advies_van=self.symbol, advies=pick(rng, weights))
        return [self.emit(at, "Zsm", "advies", t.zaak, t.ce_id, fields)]

    def _device_alarm(self, t: _Trigger) -> list[Action]:
        """Acknowledge a device alarm and follow it up (device-bevestiging, device-opvolging)."""
        r = t.record
        if r.get("soort") not in self.ALARMS:
            return []
        alarm = {
            "alarm_id": r["alarm_id"],
            "soort": r.get("soort"),
            **carry(r, "SlachtofferdeviceAlert", CASE),
        }
        out = []
        bevestigd, _ = self.draw("device_bevestiging", t)
        if bevestigd is not None:
            fields = {**alarm, "bevestigd_door": self.symbol}
            out.append(
                self.emit(bevestigd, "SlachtofferdeviceAlert", "bevestigd", t.zaak, r["alarm_id"], fields)
            )
        opgevolgd, _ = self.draw("device_opvolging", t)
        if opgevolgd is not None:
            if bevestigd is not None:
                opgevolgd = max(opgevolgd, bevestigd + timedelta(seconds=1))
            out.append(
                self.emit(opgevolgd, "SlachtofferdeviceAlert", "opgevolgd", t.zaak, r["alarm_id"], alarm)
            )
        return out


# -- the partners ---------------------------------------------------------------------------------


class VeiligThuis(_Agent):
    """Veilig Thuis: assesses every melding (its own, and the police's zorgmeldingen it
    receives), follows the chosen vervolgtraject, advises at ZSM and asks for an Actieoverleg
    when the bus proposes one. A huisverbod it receives needs nothing on the bus: the help VT
    offers during it is off the bus.

    An Escalatie does not release `schadelijke_praktijk` to VT, so when it asks for an
    Actieoverleg it takes the case facts from its own meldingen (`own_event`). It invites the
    Raad or reclassering only into a case its own dossier shows is not an EGG case kept small
    (houd het klein); a case it does not know yet gets the three fixed participants only.
    """

    partner = "veilig-thuis"

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.dossier: dict[str, dict[str, bool]] = {}
        self.on_delivery = {
            "Melding.ontvangen": self._beoordeel,
            "Zsm.zaak_aangemeld": self._advies,
            "Escalatie.risicosignaal": self._actieoverleg_aanvragen,
            "Escalatie.patroon": self._actieoverleg_aanvragen,
            "Actieoverleg.gehouden": self._acties,
        }
        self.on_own = {
            "Melding.ontvangen": self._beoordeel,
            "Melding.veiligheidsbeoordeling_afgerond": self._vervolg,
            "Melding.onderzoek_gestart": self._onderzoek_afronden,
            "Melding.onderzoek_afgerond": self._na_onderzoek,
            "Melding.overgedragen": self._na_overdracht,
            "Melding.monitoring_moment": self._na_monitoring,
        }

    def remember(self, action: Action) -> None:
        if action.family != "Melding":
            return
        facts = self.dossier.setdefault(
            action.zaak,
            {
                "schadelijke_praktijk": False,
                "risicotaxatie_vastgelegd": False,
                "minderjarigen_betrokken": False,
            },
        )
        for name in facts:
            facts[name] = facts[name] or bool(action.datum.get(name))

    def _beoordeel(self, t: _Trigger) -> list[Action]:
        r = t.record
        acuut = bool(r.get("acuut"))
        at, rng = self.draw("veiligheidsbeoordeling_acuut" if acuut else "veiligheidsbeoordeling", t)
        if at is None:
            return []
        minors = bool(r.get("minderjarigen_betrokken"))
        if acuut:
            oordeel = pick(rng, {"acuut_onveilig": 0.7, "structureel_onveilig": 0.3})
        elif r.get("signalen"):
            oordeel = pick(
                rng, {"acuut_onveilig": 0.2, "structureel_onveilig": 0.7, "geen_onveiligheid": 0.1}
            )
        else:
            oordeel = pick(
                rng, {"acuut_onveilig": 0.05, "structureel_onveilig": 0.55, "geen_onveiligheid": 0.4}
            )
        egg = bool(r.get("schadelijke_praktijk"))
        fields = carry(r, "Melding", (*CASE, "bron", "acuut", "vormen_van_geweld", "signalen", "woonadres"))
        fields.update(
            veiligheidsbeoordeling=oordeel,
            vervolgtraject=pick(rng, _trajecten(oordeel, minors)),
            # in an EGG case the assessment often includes a risicotaxatie (LEC EGG, seed 001)
            risicotaxatie_vastgelegd=bool(r.get("risicotaxatie_vastgelegd")) or (egg and rng.random() < 0.5),
        )
        return [self.emit(at, "Melding", "veiligheidsbeoordeling_afgerond", t.zaak, t.ce_id, fields)]

    def _dossier_fields(self, t: _Trigger) -> dict[str, Any]:
        return carry(t.record, "Melding", (*CASE, "vormen_van_geweld", "woonadres"))

    def _next(self, reaction: str, t: _Trigger, stap: str, **extra: Any) -> list[Action]:
        """The melding's next step, after the delay of `reaction` (none when it is missed)."""
        at, _ = self.draw(reaction, t)
        if at is None:
            return []
        return [self.emit(at, "Melding", stap, t.zaak, t.ce_id, {**self._dossier_fields(t), **extra})]

    def _vervolg(self, t: _Trigger) -> list[Action]:
        traject = str(t.record.get("vervolgtraject"))
        if traject == "onderzoek_vt":
            return self._next("onderzoek_start", t, "onderzoek_gestart")
        if traject == "voorwaarden_en_vervolg":
            return self._monitoring(t)
        if traject.startswith("overdracht_"):
            return self._next("overdracht", t, "overgedragen", vervolgtraject=traject)
        if traject in ("einde_bemoeienis", "omgezet_naar_advies"):
            return self._next("afsluiting", t, "afgesloten")
        return []  # verzoek_onderzoek_raad: the Raad investigates, off the bus

    def _onderzoek_afronden(self, t: _Trigger) -> list[Action]:
        return self._next("onderzoek", t, "onderzoek_afgerond")

    def _na_onderzoek(self, t: _Trigger) -> list[Action]:
        at, rng = self.draw("overdracht", t)
        if at is None:
            return []
        minors = bool(t.record.get("minderjarigen_betrokken"))
        weights = {
            "voorwaarden_en_vervolg": 0.35,
            "overdracht_lopende_hulp": 0.25,
            "overdracht_lokaal_team": 0.25,
            "verzoek_onderzoek_raad": 0.15 if minors else 0.0,
        }
        fields = {**self._dossier_fields(t), "vervolgtraject": pick(rng, weights)}
        return [self.emit(at, "Melding", "overgedragen", t.zaak, t.ce_id, fields)]

    def _na_overdracht(self, t: _Trigger) -> list[Action]:
        return self._monitoring(t) if t.record.get("vervolgtraject") == "voorwaarden_en_vervolg" else []

    def _monitoring(self, t: _Trigger) -> list[Action]:
        """Voorwaarden & Vervolg: monitor after 3 and 12 months (vt-monitoring, seed 001)."""
        out = []
        for months, reaction in ((3, "monitoring_3m"), (12, "monitoring_12m")):
            at, _ = self.draw(reaction, t, months)
            if at is not None:
                fields = {**self._dossier_fields(t), "monitoring_maanden": months}
                out.append(
                    self.emit(at, "Melding", "monitoring_moment", t.zaak, f"{t.ce_id}|{months}", fields)
                )
        return out

    def _na_monitoring(self, t: _Trigger) -> list[Action]:
        if t.record.get("monitoring_maanden") != 12:
            return []
        return self._next("afsluiting", t, "afgesloten")

    def _advies(self, t: _Trigger) -> list[Action]:
        minors = bool(t.record.get("minderjarigen_betrokken"))
        weights = {
            "hulpverlening": 0.5,
            "geen_bezwaar": 0.2,
            "contactverbod": 0.2,
            "onderzoek_raad": 0.1 if minors else 0,
        }
        return self._zsm_advies(t, weights)

    def _actieoverleg_aanvragen(self, t: _Trigger) -> list[Action]:
        r = t.record
        if r.get("voorstel") != "actieoverleg":
            return []
        at, _ = self.draw("actieoverleg_aanvraag", t)
        if at is None:
            return []
        persons = list(r.get("persoon_refs") or ())
        facts = self.dossier.get(t.zaak)
        minors = any(p.get("minderjarig") for p in persons) or bool(
            facts and facts["minderjarigen_betrokken"]
        )
        signalen = list(r.get("signalen") or ())
        deelnemers = ["politie", "veilig_thuis", "om"]
        open_case = facts is not None and (
            not facts["schadelijke_praktijk"] or facts["risicotaxatie_vastgelegd"]
        )
        if open_case and minors:
            deelnemers.append("raad")
        if open_case and {"aanhoudende_stalking", "doodsbedreiging"} & set(signalen):
            deelnemers.append("reclassering")
        fields = {
            "persoon_refs": persons,
            "signalen": signalen,
            "schadelijke_praktijk": bool(facts and facts["schadelijke_praktijk"]),
            "risicotaxatie_vastgelegd": bool(facts and facts["risicotaxatie_vastgelegd"]),
            "minderjarigen_betrokken": minors,
            "deelnemers": deelnemers,
        }
        return [self.emit(at, "Actieoverleg", "aangevraagd", t.zaak, t.ce_id, fields)]


def _trajecten(oordeel: str, minors: bool) -> dict[str, float]:
    """Vervolgtraject after the assessment. Most meldingen are handed over, many to the local
    team; VT investigates itself in at most about 20 % and asks the Raad in fewer
    (shared/domain/domain_research.md §1.3)."""
    raad = 1.0 if minors else 0.0
    if oordeel == "geen_onveiligheid":
        return {"einde_bemoeienis": 0.5, "omgezet_naar_advies": 0.2, "overdracht_lokaal_team": 0.3}
    if oordeel == "acuut_onveilig":
        return {
            "onderzoek_vt": 0.3,
            "voorwaarden_en_vervolg": 0.3,
            "verzoek_onderzoek_raad": 0.15 * raad,
            "overdracht_mdt": 0.1,
            "overdracht_lopende_hulp": 0.15,
        }
    return {
        "onderzoek_vt": 0.25,
        "voorwaarden_en_vervolg": 0.25,
        "overdracht_lokaal_team": 0.2,
        "overdracht_lopende_hulp": 0.1,
        "overdracht_mdt": 0.05,
        "overdracht_betrokkenen": 0.05,
        "verzoek_onderzoek_raad": 0.1 * raad,
    }


class Politie(_Agent):
    """Politie: Samen op in Acuut on an acute melding (its own zorgmelding or one VT sends),
    the noodknop and zone alarms, enforcement of the huisverbod (the contact address, and now
    and then a violation, which leads to a ZSM registration), and holding the Actieoverleg VT
    asks for. It receives a non-acute melding only with red flags; that waits for the
    Actieoverleg. Its own decisions from an Actieoverleg it completes itself."""

    partner = "politie"
    ALARMS = ("noodknop", "zone")

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.on_delivery = {
            "Melding.ontvangen": self._samen_op_in_acuut,
            "SlachtofferdeviceAlert.alarm": self._device_alarm,
            "Huisverbod.opgelegd": self._huisverbod,
            "Actieoverleg.aangevraagd": self._actieoverleg,
        }
        self.on_own = {
            "Melding.ontvangen": self._samen_op_in_acuut,
            "SamenOpInAcuut.gestart": self._inzet_afstemmen,
            "SamenOpInAcuut.inzet_afgestemd": self._acuut_afronden,
            "Huisverbod.overtreden": self._zsm_aanmelden,
            "Actieoverleg.gehouden": self._acties,
        }

    def _samen_op_in_acuut(self, t: _Trigger) -> list[Action]:
        if not t.record.get("acuut"):
            return []
        at, _ = self.draw("samen_op_in_acuut", t)
        if at is None:
            return []
        fields = carry(t.record, "SamenOpInAcuut", (*CASE, "signalen", "woonadres"))
        return [self.emit(at, "SamenOpInAcuut", "gestart", t.zaak, t.ce_id, fields)]

    def _inzet_afstemmen(self, t: _Trigger) -> list[Action]:
        at, rng = self.draw("inzet_afstemming", t)
        if at is None:
            return []
        inzet = [
            {"partner": "politie", "taak": "ter_plaatse"},
            {"partner": "veilig_thuis", "taak": "veiligheidsplan"},
        ]
        if t.record.get("minderjarigen_betrokken"):
            inzet.append({"partner": "veilig_thuis", "taak": "kinderen_in_veiligheid"})
        if rng.random() < 0.3:
            inzet.append({"partner": "politie", "taak": "huisverbod_voorbereiden"})
        if rng.random() < 0.2:
            inzet.append({"partner": "veilig_thuis", "taak": "opvang"})
        fields = carry(t.record, "SamenOpInAcuut", (*CASE, "signalen", "woonadres"))
        fields.update(gezamenlijk_uitrukken=rng.random() < 0.6, inzet=inzet)
        return [self.emit(at, "SamenOpInAcuut", "inzet_afgestemd", t.zaak, t.ce_id, fields)]

    def _acuut_afronden(self, t: _Trigger) -> list[Action]:
        at, _ = self.draw("acuut_afronding", t)
        if at is None:
            return []
        fields = carry(t.record, "SamenOpInAcuut", (*CASE, "signalen", "gezamenlijk_uitrukken", "inzet"))
        return [self.emit(at, "SamenOpInAcuut", "afgerond", t.zaak, t.ce_id, fields)]

    def _huisverbod(self, t: _Trigger) -> list[Action]:
        r = t.record
        huisverbod = carry(r, "Huisverbod", (*CASE, "ingangsdatum", "einddatum", "pleger_meerderjarig"))
        out = []
        at, rng = self.draw("contactadres", t)
        if at is not None:
            # where the barred person stays: synthetic, as every address in the simulation
            fields = {**huisverbod, "contactadres": f"Synthetischestraat {rng.randint(300, 999)}, Demodorp"}
            out.append(self.emit(at, "Huisverbod", "contactadres_opgegeven", t.zaak, t.ce_id, fields))
        at, _ = self.draw("overtreding", t)
        einde = r.get("einddatum")
        if at is not None and (einde is None or at < einde):
            fields = {**huisverbod, "woonadres": r.get("woonadres")}
            out.append(self.emit(at, "Huisverbod", "overtreden", t.zaak, t.ce_id, fields))
        return out

    def _zsm_aanmelden(self, t: _Trigger) -> list[Action]:
        """A violation of a huisverbod is a crime (Wth art. 11): the suspect goes to ZSM."""
        at, _ = self.draw("zsm_aanmelding", t)
        if at is None:
            return []
        return [self.emit(at, "Zsm", "zaak_aangemeld", t.zaak, t.ce_id, carry(t.record, "Zsm", CASE))]

    def _actieoverleg(self, t: _Trigger) -> list[Action]:
        r = t.record
        at, rng = self.draw("actieoverleg", t)
        if at is None:
            return []
        deelnemers = list(r.get("deelnemers") or ("politie", "veilig_thuis", "om"))
        signalen = set(r.get("signalen") or ())
        plan: list[tuple[str, str, int]] = [("veiligheidsplan", "veilig_thuis", 3)]
        if signalen & {"verwurging", "doodsbedreiging", "wapenbezit"}:
            plan.append(("aanhouding", "politie", 1))
        if signalen & {"aanhoudende_stalking", "scheiding", "dwingende_controle"}:
            plan.append(("slachtofferdevice", "om", 7))
        if "geweld_tijdens_zwangerschap" in signalen or rng.random() < 0.3:
            plan.append(("hulpverlening", "veilig_thuis", 5))
        if not signalen and rng.random() < 0.3:
            plan.append(("huisverbod_voorbereiden", "politie", 1))
        if "raad" in deelnemers:
            plan.append(("verzoek_onderzoek_raad", "raad", 14))
        if "reclassering" in deelnemers:
            plan.append(("toezicht_reclassering", "reclassering", 7))
        besluiten = [
            {
                "besluit_id": f"{t.ce_id[:8]}-{i}",
                "soort": soort,
                "eigenaar": eigenaar,
                "uiterlijk": at + timedelta(days=days),
            }
            for i, (soort, eigenaar, days) in enumerate(plan, start=1)
        ]
        fields = carry(r, "Actieoverleg", (*CASE, "signalen"))
        fields.update(deelnemers=deelnemers, besluiten=besluiten)
        return [self.emit(at, "Actieoverleg", "gehouden", t.zaak, t.ce_id, fields)]


class Om(_Agent):
    """Openbaar Ministerie: decides on every case at the ZSM table (zsm-beslissing, 6 hours)
    and completes what an Actieoverleg assigned to it."""

    partner = "om"

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.on_delivery = {"Zsm.zaak_aangemeld": self._beslis, "Actieoverleg.gehouden": self._acties}

    def _beslis(self, t: _Trigger) -> list[Action]:
        at, rng = self.draw("zsm_beslissing", t)
        if at is None:
            return []
        beslissing = pick(
            rng,
            {
                "dagvaarden": 0.25,
                "strafbeschikking": 0.15,
                "voorwaardelijk_sepot": 0.2,
                "sepot": 0.1,
                "voorgeleiding_rc": 0.15,
                "nader_onderzoek": 0.15,
            },
        )
        voorwaarden: list[str] = []
        if beslissing in ("voorwaardelijk_sepot", "voorgeleiding_rc", "dagvaarden"):
            chances = {"contactverbod": 0.7, "gebiedsverbod": 0.4, "meldplicht": 0.3, "behandeling": 0.3}
            if t.record.get("signalen"):
                chances["enkelband"] = 0.3
            voorwaarden = [v for v, p in chances.items() if rng.random() < p]
        fields = carry(t.record, "Zsm", CASE)
        fields.update(beslissing=beslissing, bijzondere_voorwaarden=voorwaarden)
        return [self.emit(at, "Zsm", "beslissing", t.zaak, t.ce_id, fields)]


class Reclassering(_Agent):
    """Reclassering: advises at ZSM, acknowledges and follows up proximity (and sabotage)
    alarms of a tagged perpetrator, and completes what an Actieoverleg assigned to it. A zone
    alarm it receives without location is for supervision only: the police answer it."""

    partner = "reclassering"
    ALARMS = ("nabijheid", "sabotage")

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.on_delivery = {
            "Zsm.zaak_aangemeld": self._advies,
            "SlachtofferdeviceAlert.alarm": self._device_alarm,
            "Actieoverleg.gehouden": self._acties,
        }

    def _advies(self, t: _Trigger) -> list[Action]:
        weights = {
            "toezicht_reclassering": 0.35,
            "gedragsinterventie": 0.25,
            "contactverbod": 0.2,
            "geen_bezwaar": 0.1,
            "geen_advies": 0.1,
        }
        return self._zsm_advies(t, weights)


class Raad(_Agent):
    """Raad voor de Kinderbescherming: advises at ZSM when a minor is involved, and completes
    what an Actieoverleg assigned to it. A request from VT to investigate has no step on the
    bus: the Raad's onderzoek is off the bus."""

    partner = "raad"

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.on_delivery = {"Zsm.zaak_aangemeld": self._advies, "Actieoverleg.gehouden": self._acties}

    def _advies(self, t: _Trigger) -> list[Action]:
        if not t.record.get("minderjarigen_betrokken"):
            return []
        weights = {"onderzoek_raad": 0.4, "hulpverlening": 0.3, "geen_bezwaar": 0.2, "geen_advies": 0.1}
        return self._zsm_advies(t, weights)


class Gemeente(_Agent):
    """The burgemeester: on the reminder of huisverbod-verlenging (day 8), extends the
    huisverbod to 28 days after it took effect, lets it end, or revokes it; a decision after the
    10 days ran out can only record the end. An extended huisverbod ends when its 28 days run
    out.

    The reminder carries no ingangsdatum and no persons, so the gemeente takes them from the
    huisverbod it imposed itself (`own_event`). Without that record it falls back on the
    reminder's deadline: the timer counts 10 calendar days (Dutch time) from the opgelegd
    event, and a huisverbod takes effect when it is imposed.
    """

    partner = "gemeente"

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.huisverboden: dict[str, dict[str, Any]] = {}  # by the ce_id of opgelegd, and by zaak
        self.on_delivery = {"Escalatie.herinnering": self._verlenging}
        self.on_own = {"Huisverbod.verlengd": self._afloop}

    def remember(self, action: Action) -> None:
        if action.family == "Huisverbod" and action.stap == "opgelegd":
            self.huisverboden[action.ce_id] = action.datum
            self.huisverboden[action.zaak] = action.datum

    def _verlenging(self, t: _Trigger) -> list[Action]:
        r = t.record
        if r.get("timer") != "huisverbod-verlenging":
            return []
        huisverbod = self.huisverboden.get(str(r.get("aanleiding_event_id"))) or self.huisverboden.get(t.zaak)
        if huisverbod is None:
            deadline = r.get("deadline")
            if not isinstance(deadline, datetime):
                return []
            local = deadline.astimezone(AMSTERDAM).replace(tzinfo=None) - HUISVERBOD_MAX
            start = to_millis(local.replace(tzinfo=AMSTERDAM))
            huisverbod = {
                "ingangsdatum": start,
                "einddatum": start + HUISVERBOD_MAX,
                "pleger_meerderjarig": True,
            }
        at, rng = self.draw("huisverbod_besluit", t)
        if at is None:
            return []
        fields = carry(huisverbod, "Huisverbod", (*CASE, "ingangsdatum", "pleger_meerderjarig", "woonadres"))
        fields["einddatum"] = huisverbod["einddatum"]
        if at >= huisverbod["einddatum"]:
            return [self.emit(at, "Huisverbod", "beeindigd", t.zaak, t.ce_id, fields)]
        stap = pick(rng, BESLUIT_NA_HERINNERING)
        if stap == "verlengd":
            fields["einddatum"] = huisverbod["ingangsdatum"] + HUISVERBOD_MAX_VERLENGD
        return [self.emit(at, "Huisverbod", stap, t.zaak, t.ce_id, fields)]

    def _afloop(self, t: _Trigger) -> list[Action]:
        einde = t.record["einddatum"]
        at, _ = self.draw("afloop", t, base=einde)
        if at is None:
            return []
        fields = carry(
            t.record, "Huisverbod", (*CASE, "ingangsdatum", "einddatum", "pleger_meerderjarig", "woonadres")
        )
        return [self.emit(at, "Huisverbod", "beeindigd", t.zaak, t.ce_id, fields)]


class Alarmcentrale(_Agent):
    """The alarm platform: closes a device alarm once it has been followed up. It receives only
    who acknowledged (no persons, no location), which is all it needs."""

    partner = "alarmcentrale"

    def __init__(self, seed: int, profiles: Mapping[str, Profile]) -> None:
        super().__init__(seed, profiles)
        self.on_delivery = {"SlachtofferdeviceAlert.opgevolgd": self._afsluiten}

    def _afsluiten(self, t: _Trigger) -> list[Action]:
        at, _ = self.draw("afsluiting", t)
        if at is None:
            return []
        alarm_id = str(t.record["alarm_id"])
        return [
            self.emit(at, "SlachtofferdeviceAlert", "afgesloten", t.zaak, t.ce_id, {"alarm_id": alarm_id})
        ]


# -- defaults -------------------------------------------------------------------------------------


def _p(mean: timedelta, sigma: float = 0.5, miss: float = 0.0) -> Profile:
    return Profile(mean_delay=mean, sigma=sigma, miss_rate=miss)


SECOND, MINUTE, HOUR, DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

#: partner -> reaction -> Profile. Tuned so that in a 40-case run every timer of
#: policy/termijnen.yaml is met most of the time and missed now and then, as in practice (IGJ
#: 2023: 5 of 25 VT organisations met the 5-working-day term; the 2019 sector norm asks 90 % of
#: assessments within 5 days and 80 % of onderzoeken within 10 weeks). Delays are *assumptions*
#: unless a deadline bounds them. The timer each reaction answers is named alongside.
DEFAULT_PROFILES: dict[str, dict[str, Profile]] = {
    "veilig-thuis": {
        "veiligheidsbeoordeling": _p(4 * DAY, 0.5, 0.1),  # vt-veiligheidsbeoordeling, 5 working days
        "veiligheidsbeoordeling_acuut": _p(2 * HOUR, 0.5, 0.1),  # vt-acuut, 1 hour (often via SamenOpInAcuut)
        "onderzoek_start": _p(3 * DAY, 0.5),
        "onderzoek": _p(8 * 7 * DAY + 2 * DAY, 0.3, 0.12),  # vt-onderzoek, 10 weeks
        "overdracht": _p(5 * DAY, 0.5),
        "monitoring_3m": _p(85 * DAY, 0.08, 0.15),  # vt-monitoring-3m, 3 months
        "monitoring_12m": _p(352 * DAY, 0.05, 0.18),  # vt-monitoring-12m, 12 months
        "afsluiting": _p(7 * DAY, 0.5),
        "zsm_advies": _p(2 * HOUR, 0.5, 0.15),
        "actieoverleg_aanvraag": _p(2 * HOUR, 0.6, 0.1),
        "actie": _p(3 * DAY, 0.6, 0.1),
    },
    "politie": {
        "samen_op_in_acuut": _p(30 * MINUTE, 0.6, 0.3),  # vt-acuut, 1 hour
        "inzet_afstemming": _p(30 * MINUTE, 0.5),
        "acuut_afronding": _p(8 * HOUR, 0.5),
        "device_bevestiging": _p(30 * SECOND, 0.5, 0.2),  # device-bevestiging, 60 seconds
        "device_opvolging": _p(10 * MINUTE, 0.4, 0.15),  # device-opvolging, 15 minutes
        "contactadres": _p(14 * HOUR, 0.5, 0.25),  # huisverbod-contactadres, 24 hours
        "overtreding": _p(4 * DAY, 0.6, 0.8),  # a violation in 1 of 5 huisverboden (*assumption*)
        "zsm_aanmelding": _p(3 * HOUR, 0.5, 0.2),
        "actieoverleg": _p(20 * HOUR, 0.8, 0.25),  # actieoverleg, 1 working day
        "actie": _p(2 * DAY, 0.6, 0.1),
    },
    "om": {
        "zsm_beslissing": _p(4.5 * HOUR, 0.5, 0.12),  # zsm-beslissing, 6 hours
        "actie": _p(5 * DAY, 0.6, 0.1),
    },
    "reclassering": {
        "zsm_advies": _p(150 * MINUTE, 0.5, 0.15),
        "device_bevestiging": _p(35 * SECOND, 0.5, 0.2),  # device-bevestiging, 60 seconds
        "device_opvolging": _p(10 * MINUTE, 0.4, 0.15),  # device-opvolging, 15 minutes
        "actie": _p(5 * DAY, 0.6, 0.1),
    },
    "raad": {
        "zsm_advies": _p(3 * HOUR, 0.5, 0.2),
        "actie": _p(10 * DAY, 0.5, 0.1),
    },
    "gemeente": {
        "huisverbod_besluit": _p(
            1.2 * DAY, 0.5, 0.25
        ),  # huisverbod-verlenging: reminder day 8, expiry day 10
        "afloop": _p(2 * HOUR, 0.5),
    },
    "alarmcentrale": {
        "afsluiting": _p(20 * MINUTE, 0.5, 0.05),
    },
}

AGENT_TYPES: dict[str, type[_Agent]] = {
    cls.partner: cls for cls in (VeiligThuis, Politie, Om, Reclassering, Raad, Gemeente, Alarmcentrale)
}


def agents(seed: int, profiles: Mapping[str, Mapping[str, Profile]] | None = None) -> dict[str, PartnerAgent]:
    """One agent per partner. `profiles` overrides DEFAULT_PROFILES per partner and reaction;
    an unknown partner or reaction name is an error, not a silently ignored setting."""
    overrides = dict(profiles or {})
    unknown_partners = sorted(set(overrides) - set(PARTNERS))
    if unknown_partners:
        raise ValueError(f"no simulated partner {unknown_partners}")
    out: dict[str, PartnerAgent] = {}
    for partner in PARTNERS:
        merged = dict(DEFAULT_PROFILES[partner])
        extra = overrides.get(partner, {})
        unknown = sorted(set(extra) - set(merged))
        if unknown:
            raise ValueError(f"{partner} has no reaction {unknown}; it has {sorted(merged)}")
        merged.update(extra)
        out[partner] = AGENT_TYPES[partner](seed, merged)
    return out


def never(profiles: Mapping[str, Mapping[str, Profile]] = DEFAULT_PROFILES) -> dict[str, dict[str, Profile]]:
    """`profiles` with every miss rate 1.0: partners that never react (for tests and scenarios)."""
    return {
        partner: {name: Profile(p.mean_delay, p.sigma, 1.0) for name, p in reactions.items()}
        for partner, reactions in profiles.items()
    }
