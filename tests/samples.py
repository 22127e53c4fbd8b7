"""Complete, valid sample events for every lifecycle step, with synthetic values only.

Every free-text value carries MARKER so a test can scan logs for leaked personal data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.registry import PARTNER_FAMILIES, family

MARKER = "MRK7Q"
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def persons(zaak: str) -> list[dict[str, Any]]:
    return [
        {"persoon_ref": f"{MARKER}-slachtoffer-{zaak}", "rol": "slachtoffer", "minderjarig": False},
        {"persoon_ref": f"{MARKER}-pleger-{zaak}", "rol": "pleger", "minderjarig": False},
        {"persoon_ref": f"{MARKER}-kind-{zaak}", "rol": "kind", "minderjarig": True},
    ]


def sample(family_name: str, step: str, zaak: str, **overrides: Any) -> dict[str, Any]:
    """A datum of `family_name` at `step` with every field that step uses filled in."""
    fam = family(family_name)
    datum: dict[str, Any] = {"stap": step, "zaak_ref": zaak, "tijdstip": T0, "persoon_refs": persons(zaak)}
    common = {
        "signalen": ["verwurging", "scheiding"],
        "vormen_van_geweld": ["partnergeweld"],
        "minderjarigen_betrokken": True,
        "woonadres": f"{MARKER} Voorbeeldstraat 1, Utrecht",
    }
    specific: dict[str, dict[str, Any]] = {
        "Melding": {
            "acuut": True,
            "veiligheidsbeoordeling": "acuut_onveilig",
            "vervolgtraject": "verzoek_onderzoek_raad",
            "monitoring_maanden": 3,
        },
        "Actieoverleg": {
            "deelnemers": ["politie", "veilig_thuis", "om", "raad"],
            "besluiten": [
                {"besluit_id": "B1", "soort": "veiligheidsplan", "eigenaar": "veilig_thuis", "uiterlijk": T0}
            ],
            "besluit_id": "B1",
        },
        "SamenOpInAcuut": {
            "gezamenlijk_uitrukken": True,
            "inzet": [{"partner": "politie", "taak": "ter_plaatse"}],
        },
        "Zsm": {
            "advies_van": "reclassering",
            "advies": "toezicht_reclassering",
            "beslissing": "voorwaardelijk_sepot",
            "bijzondere_voorwaarden": ["contactverbod", "enkelband"],
        },
        "Huisverbod": {
            "ingangsdatum": T0,
            "einddatum": T0 + dt.timedelta(days=10 if step == "opgelegd" else 28),
            "pleger_meerderjarig": True,
            "contactadres": f"{MARKER} Logeeradres 9, Zeist",
        },
        "SlachtofferdeviceAlert": {
            "alarm_id": f"A-{zaak}",
            "soort": "noodknop",
            "locatie": {"lat": 52.0907, "lon": 5.1214, "nauwkeurigheid_m": 8},
            "afstand_m": 800,
            "bevestigd_door": "politie",
        },
    }
    for name, value in {**common, **specific.get(family_name, {}), **overrides}.items():
        if name in fam.field_names:
            datum[name] = value
    return datum


def producer_of(family_name: str, step: str) -> str:
    return sorted(family(family_name).producers[step])[0]


def every_step() -> list[tuple[str, str]]:
    return [(name, step) for name in PARTNER_FAMILIES for step in family(name).steps]
