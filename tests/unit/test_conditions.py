"""The shared condition language (streams/conditions.py) of verstrekkingen.yaml and termijnen.yaml."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas import family
from streams import conditions, deadlines, policy
from streams.conditions import Condition, ConditionError, parse

ACUUT = {"field": "acuut", "equals": True}
RODE_VLAG = {"field": "signalen", "not_empty": True}

# ── Parsing ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (ACUUT, Condition("equals", field="acuut", value=True)),
        ({"field": "soort", "in": ["noodknop", "zone"]}, Condition("in", "soort", ("noodknop", "zone"))),
        (RODE_VLAG, Condition("not_empty", field="signalen", value=True)),
        ({"field": "woonadres", "equals": None}, Condition("equals", field="woonadres", value=None)),
        ({"recipient_in": "ontvangers"}, Condition("recipient_in", field="ontvangers")),
        ({"not": ACUUT}, Condition("not", children=(Condition("equals", "acuut", True),))),
        (
            {"all": [ACUUT, RODE_VLAG]},
            Condition(
                "all", children=(Condition("equals", "acuut", True), Condition("not_empty", "signalen", True))
            ),
        ),
        (
            {"any": [ACUUT, {"not": RODE_VLAG}]},
            Condition(
                "any",
                children=(
                    Condition("equals", "acuut", True),
                    Condition("not", children=(Condition("not_empty", "signalen", True),)),
                ),
            ),
        ),
    ],
)
def test_parse(raw: dict[str, Any], expected: Condition) -> None:
    parsed = parse(raw)
    assert parsed == expected
    assert parse(parsed.to_raw()) == parsed
    assert hash(parsed) == hash(expected)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("acuut", "a condition is a mapping"),
        ({}, "a condition is a mapping"),
        (None, "a condition is a mapping"),
        ({"field": "acuut", "groter": 1}, "unknown operator 'groter' on 'acuut'"),
        ({"field": "acuut"}, "condition on 'acuut' needs exactly one of equals, in, not_empty"),
        (
            {"field": "acuut", "equals": True, "not_empty": True},
            "condition on 'acuut' needs exactly one of equals, in, not_empty",
        ),
        ({"field": 3, "equals": True}, "field takes a field name, got 3"),
        ({"equals": True}, "not a condition"),
        ({"field": "soort", "in": []}, "'in' on 'soort' takes a non-empty list"),
        ({"field": "soort", "in": "zone"}, "'in' on 'soort' takes a non-empty list"),
        ({"field": "soort", "in": [["zone"]]}, "'in' on 'soort' lists plain values"),
        ({"field": "soort", "equals": ["zone", "noodknop"]}, "use 'in' for several"),
        ({"field": "signalen", "not_empty": "ja"}, "not_empty on 'signalen' takes true or false"),
        ({"recipient_in": ["ontvangers"]}, "recipient_in takes the name of a Partner field"),
        ({"all": []}, "all takes a non-empty list of conditions"),
        ({"any": ACUUT}, "any takes a non-empty list of conditions"),
        ({"all": [ACUUT], "any": [ACUUT]}, "a condition with all has no other keys, got also any"),
        ({"not": ACUUT, "field": "acuut"}, "a condition with not has no other keys"),
        # The message says where in a nested condition the problem is.
        ({"all": [ACUUT, {"not": {"field": "acuut", "groter": 1}}]}, "all.1.not: unknown operator 'groter'"),
        ({"any": [ACUUT, "x"]}, "any.1: a condition is a mapping"),
    ],
)
def test_parse_rejects(raw: Any, message: str) -> None:
    with pytest.raises(ConditionError) as excinfo:
        parse(raw)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


# ── Evaluation ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("raw", "record", "holds"),
    [
        (ACUUT, {"acuut": True}, True),
        (ACUUT, {"acuut": False}, False),
        (ACUUT, {}, False),
        ({"field": "monitoring_maanden", "equals": 3}, {"monitoring_maanden": 3}, True),
        # A boolean never equals a number, either way round.
        ({"field": "monitoring_maanden", "equals": 1}, {"monitoring_maanden": True}, False),
        ({"field": "acuut", "equals": True}, {"acuut": 1}, False),
        ({"field": "woonadres", "equals": None}, {}, True),
        ({"field": "woonadres", "equals": None}, {"woonadres": "Dorpsstraat 1"}, False),
        ({"field": "soort", "in": ["noodknop", "zone"]}, {"soort": "zone"}, True),
        ({"field": "soort", "in": ["noodknop", "zone"]}, {"soort": "nabijheid"}, False),
        ({"field": "soort", "in": ["noodknop", "zone"]}, {}, False),
        # On a list field equals and in mean "contains (any of)".
        ({"field": "signalen", "equals": "verwurging"}, {"signalen": ["scheiding", "verwurging"]}, True),
        ({"field": "signalen", "equals": "verwurging"}, {"signalen": ["scheiding"]}, False),
        ({"field": "signalen", "in": ["verwurging", "wapenbezit"]}, {"signalen": ["wapenbezit"]}, True),
        ({"field": "signalen", "in": ["verwurging", "wapenbezit"]}, {"signalen": ("wapenbezit",)}, True),
        ({"field": "signalen", "in": ["verwurging"]}, {"signalen": []}, False),
        ({"field": "signalen", "in": ["verwurging"]}, {"signalen": None}, False),
        # not_empty: present and not null, "" or []; false and 0 are values.
        (RODE_VLAG, {"signalen": ["scheiding"]}, True),
        (RODE_VLAG, {"signalen": []}, False),
        (RODE_VLAG, {}, False),
        ({"field": "woonadres", "not_empty": True}, {"woonadres": ""}, False),
        ({"field": "acuut", "not_empty": True}, {"acuut": False}, True),
        ({"field": "afstand_m", "not_empty": True}, {"afstand_m": 0}, True),
        ({"field": "woonadres", "not_empty": False}, {}, True),
        ({"field": "woonadres", "not_empty": False}, {"woonadres": "x"}, False),
        ({"not": ACUUT}, {"acuut": False}, True),
        ({"not": ACUUT}, {"acuut": True}, False),
        ({"all": [ACUUT, RODE_VLAG]}, {"acuut": True}, False),
        ({"all": [ACUUT, RODE_VLAG]}, {"acuut": True, "signalen": ["stalking"]}, True),
        ({"any": [ACUUT, RODE_VLAG]}, {"signalen": ["stalking"]}, True),
        ({"any": [ACUUT, RODE_VLAG]}, {"acuut": False, "signalen": []}, False),
        # Without a recipient (timers, patterns) recipient_in does not hold.
        ({"recipient_in": "ontvangers"}, {"ontvangers": ["veilig_thuis"]}, False),
    ],
)
def test_evaluate(raw: dict[str, Any], record: dict[str, Any], holds: bool) -> None:
    condition = parse(raw)
    assert condition.evaluate(record) is holds
    assert deadlines.matches(condition, record) is holds


@pytest.mark.parametrize(
    ("record", "recipient", "holds"),
    [
        ({"ontvangers": ["veilig_thuis", "politie"]}, "veilig-thuis", True),
        ({"ontvangers": ["veilig_thuis", "politie"]}, "politie", True),
        ({"ontvangers": ["politie"]}, "veilig-thuis", False),
        ({"ontvangers": []}, "politie", False),
        ({}, "politie", False),
        ({"ontvangers": ["politie"]}, None, False),
        # A single Partner field counts as a one-element list, not as a string to search in.
        ({"ontvangers": "veilig_thuis"}, "veilig-thuis", True),
        ({"ontvangers": "gemeente"}, "om", False),
    ],
)
def test_recipient_in(record: dict[str, Any], recipient: str | None, holds: bool) -> None:
    assert parse({"recipient_in": "ontvangers"}).evaluate(record, recipient) is holds


def test_the_recipient_reaches_nested_conditions() -> None:
    condition = parse({"all": [ACUUT, {"not": {"recipient_in": "deelnemers"}}]})
    record = {"acuut": True, "deelnemers": ["politie"]}
    assert condition.evaluate(record, "om")
    assert not condition.evaluate(record, "politie")


def test_no_condition_always_matches() -> None:
    assert deadlines.matches(None, {})


def test_fields_lists_every_field_read() -> None:
    condition = parse({"all": [ACUUT, {"any": [RODE_VLAG, {"not": {"recipient_in": "ontvangers"}}]}]})
    assert condition.fields() == {"acuut", "signalen", "ontvangers"}


# ── describe ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (ACUUT, "acuut = True"),
        (
            {"field": "vervolgtraject", "equals": "verzoek_onderzoek_raad"},
            "vervolgtraject = 'verzoek_onderzoek_raad'",
        ),
        ({"field": "soort", "in": ["noodknop", "zone"]}, "soort in ['noodknop', 'zone']"),
        (RODE_VLAG, "signalen niet leeg"),
        ({"field": "signalen", "not_empty": False}, "signalen leeg"),
        ({"recipient_in": "ontvangers"}, "ontvanger staat in ontvangers"),
        ({"all": [ACUUT, RODE_VLAG]}, "(acuut = True en signalen niet leeg)"),
        ({"any": [ACUUT, RODE_VLAG]}, "(acuut = True of signalen niet leeg)"),
        ({"not": ACUUT}, "niet acuut = True"),
    ],
)
def test_describe(raw: dict[str, Any], text: str) -> None:
    assert parse(raw).describe() == text


# ── problems against a family ────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("family_name", "raw"),
    [
        ("Melding", ACUUT),
        ("Melding", {"field": "signalen", "in": ["verwurging", "wapenbezit"]}),
        ("Melding", {"field": "vervolgtraject", "equals": "verzoek_onderzoek_raad"}),
        ("Melding", {"field": "monitoring_maanden", "equals": 3}),
        ("Melding", {"field": "woonadres", "equals": None}),
        ("Melding", {"field": "persoon_refs", "not_empty": True}),
        ("SlachtofferdeviceAlert", {"field": "soort", "in": ["noodknop", "zone"]}),
        ("Escalatie", {"recipient_in": "ontvangers"}),
        ("Actieoverleg", {"recipient_in": "deelnemers"}),
        ("SlachtofferdeviceAlert", {"recipient_in": "bevestigd_door"}),
    ],
)
def test_problems_accepts(family_name: str, raw: dict[str, Any]) -> None:
    assert conditions.problems(parse(raw), family(family_name)) == []


@pytest.mark.parametrize(
    ("family_name", "raw", "expected"),
    [
        ("Melding", {"field": "acute", "equals": True}, ["Melding has no field 'acute'"]),
        ("Melding", {"field": "acuut", "equals": "ja"}, ["Melding.acuut is true or false, not 'ja'"]),
        (
            "Melding",
            {"field": "monitoring_maanden", "equals": "3"},
            ["Melding.monitoring_maanden is a number"],
        ),
        (
            "Melding",
            {"field": "monitoring_maanden", "equals": True},
            ["Melding.monitoring_maanden is a number"],
        ),
        ("Melding", {"field": "woonadres", "equals": 12}, ["Melding.woonadres is text, not 12"]),
        (
            "SlachtofferdeviceAlert",
            {"field": "soort", "equals": "verzonnen"},
            ["'verzonnen' is not a value of soort (AlarmSoort: noodknop, nabijheid, zone, sabotage)"],
        ),
        (
            "Melding",
            {"field": "signalen", "in": ["verwurging", "wurging"]},
            ["'wurging' is not a value of signalen (RisicoSignaal"],
        ),
        ("Melding", {"field": "persoon_refs", "equals": "p1"}, ["Melding.persoon_refs holds records"]),
        ("Melding", {"recipient_in": "signalen"}, ["Melding.signalen does not list partners"]),
        ("Melding", {"recipient_in": "ontvangers"}, ["Melding has no field 'ontvangers'"]),
        (
            "Melding",
            {"all": [{"field": "acute", "equals": True}, {"not": {"field": "bron", "in": ["buurman"]}}]},
            ["Melding has no field 'acute'", "'buurman' is not a value of bron"],
        ),
    ],
)
def test_problems_rejects(family_name: str, raw: dict[str, Any], expected: list[str]) -> None:
    found = conditions.problems(parse(raw), family(family_name))
    assert len(found) == len(expected), found
    for problem, wanted in zip(found, expected, strict=True):
        assert wanted in problem


def test_problems_names_the_subject() -> None:
    found = conditions.problems(
        parse({"field": "acute", "equals": True}), family("Melding"), subject="Melding.x"
    )
    assert found == ["Melding.x has no field 'acute'"]


def test_no_condition_has_no_problems() -> None:
    assert conditions.problems(None, family("Melding")) == []


# ── As a pydantic field type ─────────────────────────────────────────────────────────────


class _Holder(BaseModel):
    when: Condition | None = None


def test_a_pydantic_field_parses_and_dumps_the_yaml_form() -> None:
    raw = {"any": [ACUUT, {"field": "soort", "in": ["zone"]}]}
    holder = _Holder.model_validate({"when": raw})
    assert holder.when == parse(raw)
    assert holder.model_dump() == {"when": raw}
    assert _Holder.model_validate({"when": holder.when}).when is holder.when
    assert _Holder().when is None
    assert _Holder.model_json_schema()["properties"]["when"]


def test_a_pydantic_field_reports_the_condition_error() -> None:
    with pytest.raises(ValidationError) as excinfo:
        _Holder.model_validate({"when": {"field": "acuut", "groter": 1}})
    assert "unknown operator 'groter'" in str(excinfo.value)


def test_policy_and_deadlines_share_the_type() -> None:
    assert policy.Condition is Condition and policy.ConditionError is ConditionError
    assert policy.parse_condition(ACUUT) == parse(ACUUT)
    assert policy.Rule.model_fields["when"].annotation == Condition | None
    assert deadlines.TimerDef.model_fields["when"].annotation == Condition | None
    assert deadlines.EventRef.model_fields["when"].annotation == Condition | None


def test_policy_check_rejects_a_value_that_is_not_an_enum_symbol() -> None:
    raw = {
        "version": "0",
        "rules": [
            {
                "id": "alarm",
                "types": ["SlachtofferdeviceAlert.alarm"],
                "to": ["politie"],
                "fields": ["soort"],
                "when": {"field": "soort", "equals": "verzonnen"},
                "grondslag": "test",
                "doel": "test",
            }
        ],
    }
    with pytest.raises(policy.PolicyError) as excinfo:
        policy.parse(raw)
    assert excinfo.value.problems == [
        "policy: rule 'alarm': 'verzonnen' is not a value of soort"
        " (AlarmSoort: noodknop, nabijheid, zone, sabotage)"
    ]


def test_policy_check_rejects_a_mistyped_houd_het_klein() -> None:
    raw = {
        "version": "0",
        "houd_het_klein": {
            "applies_when": {"field": "schadelijke_praktijk", "equals": "ja"},
            "lifted_when": {"field": "risicotaxatie", "equals": True},
            "allowed_recipients": ["politie"],
        },
        "rules": [],
    }
    with pytest.raises(policy.PolicyError) as excinfo:
        policy.parse(raw)
    problems = excinfo.value.problems
    assert len(problems) == 2, problems
    assert "applies_when" in problems[0] and "schadelijke_praktijk is true or false, not 'ja'" in problems[0]
    assert "lifted_when: no event family has field(s) risicotaxatie" in problems[1]
