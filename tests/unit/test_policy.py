"""The policy engine and `ketenbus policy check|explain` on the shipped and on broken policies."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import family
from schemas.registry import PARTNERS
from streams import policy
from streams.cli import main
from streams.settings import Settings

SHIPPED = Settings().policy_file


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def rule(raw: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in raw["rules"] if r["id"] == rule_id)


def test_shipped_policy_passes(capsys) -> None:
    assert main(["policy", "check"]) == 0
    assert "all valid" in capsys.readouterr().out


def test_every_rule_names_grondslag_and_doel(raw) -> None:
    for r in raw["rules"]:
        assert r["grondslag"].strip() and r["doel"].strip(), r["id"]


def _broken(raw: dict[str, Any], change) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    change(data)
    return data


BREAKAGES = {
    "no grondslag": (lambda d: d["rules"][0].pop("grondslag"), "grondslag"),
    "empty doel": (lambda d: d["rules"][0].update(doel=""), "doel"),
    "special without art9": (
        lambda d: rule(d, "melding-veilig-thuis").pop("art9"),
        "special (AVG art. 9) field",
    ),
    "criminal without art10": (
        lambda d: rule(d, "melding-veilig-thuis").pop("art10"),
        "criminal (AVG art. 10) field",
    ),
    "unknown event type": (lambda d: d["rules"][0].update(types=["Melding.verzonnen"]), "unknown event type"),
    "unknown recipient": (lambda d: d["rules"][0].update(to=["buurman"]), "unknown recipient"),
    "unknown field": (lambda d: d["rules"][0]["fields"].append("bsn"), "has no field"),
    "unknown condition field": (
        lambda d: d["rules"][0].update(when={"field": "nationaliteit", "equals": "x"}),
        "has no field",
    ),
    "bad condition": (
        lambda d: d["rules"][0].update(when={"field": "acuut", "groter": 1}),
        "unknown operator",
    ),
    "duplicate id": (lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])), "duplicate id"),
    "unknown key": (lambda d: d["rules"][0].update(verstrek_alles=True), "Extra inputs"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_a_broken_copy_is_rejected(raw, tmp_path: Path, capsys, name: str) -> None:
    change, expected = BREAKAGES[name]
    path = tmp_path / "verstrekkingen.yaml"
    path.write_text(yaml.safe_dump(_broken(raw, change), allow_unicode=True), encoding="utf-8")
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err


def test_explain_device_alarm_to_veilig_thuis_lists_no_location_field(capsys) -> None:
    assert main(["policy", "explain", "SlachtofferdeviceAlert.alarm", "veilig-thuis", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"type", "recipient", "allowed", "fields", "grondslag", "doel", "conditions"}
    assert result["allowed"] is True
    fam = family("SlachtofferdeviceAlert")
    assert result["fields"]
    assert all(fam.field(f).classification != "location" for f in result["fields"])


def test_explain_accepts_the_ce_type_and_says_default_deny(capsys) -> None:
    assert main(["policy", "explain", "nl.ketenbus.melding.ontvangen", "gemeente", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["type"] == "nl.ketenbus.melding.ontvangen"
    assert result["allowed"] is False and result["fields"] == []
    assert main(["policy", "explain", "Melding.ontvangen", "politie"]) == 0
    text = capsys.readouterr().out
    assert "grondslag" in text and "only when" in text


def test_explain_rejects_unknown_type_and_recipient(capsys) -> None:
    assert main(["policy", "explain", "Melding.bestaatniet", "politie"]) == 2
    assert main(["policy", "explain", "Melding.ontvangen", "buurman"]) == 2


@pytest.mark.parametrize(
    ("raw_condition", "event", "expected"),
    [
        ({"field": "acuut", "equals": True}, {"acuut": True}, True),
        ({"field": "acuut", "equals": True}, {"acuut": False}, False),
        ({"field": "soort", "in": ["noodknop", "zone"]}, {"soort": "zone"}, True),
        ({"field": "soort", "in": ["noodknop", "zone"]}, {"soort": "nabijheid"}, False),
        ({"field": "signalen", "not_empty": True}, {"signalen": ["verwurging"]}, True),
        ({"field": "signalen", "not_empty": True}, {"signalen": []}, False),
        ({"not": {"field": "acuut", "equals": True}}, {"acuut": False}, True),
        ({"any": [{"field": "acuut", "equals": True}, {"field": "x", "equals": 1}]}, {"x": 1}, True),
        ({"all": [{"field": "acuut", "equals": True}, {"field": "x", "equals": 1}]}, {"x": 1}, False),
    ],
)
def test_conditions(raw_condition, event, expected) -> None:
    assert policy.parse_condition(raw_condition).evaluate(event) is expected


def test_recipient_in_maps_partner_symbols() -> None:
    cond = policy.parse_condition({"recipient_in": "ontvangers"})
    assert cond.evaluate({"ontvangers": ["veilig_thuis"]}, "veilig-thuis")
    assert not cond.evaluate({"ontvangers": ["politie"]}, "veilig-thuis")


def test_default_deny_for_a_type_without_rules() -> None:
    empty = policy.Policy.model_validate({"version": "0", "rules": []})
    fam = family("Melding")
    decisions = empty.decide(fam, fam.ce_type("ontvangen"), {"acuut": True})
    assert set(decisions) == set(PARTNERS)
    assert not any(d.allowed for d in decisions.values())
