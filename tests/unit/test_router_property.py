"""Property: whatever the policy and the event, no recipient receives a type or a field that no
rule released to it, and every delivery has exactly one Verstrekking.

The oracle below is written independently of `Policy.decide`: it re-reads the rules as a
privacy officer would (type pattern, recipient, condition) and asks whether the delivered bytes
stay inside what those rules list.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Envelope, default_codec, family
from schemas.registry import PARTNER_FAMILIES, PARTNERS
from streams import topics
from streams.policy import Policy
from streams.router import InRecord, Router
from tests.strategies import event_strategy

BOOL_CONDITION_FIELDS = (
    "acuut",
    "schadelijke_praktijk",
    "minderjarigen_betrokken",
    "risicotaxatie_vastgelegd",
)


@st.composite
def rules(draw: st.DrawFn, index: int) -> dict[str, Any]:
    fam = family(draw(st.sampled_from(PARTNER_FAMILIES)))
    pattern = draw(st.sampled_from([f"{fam.name}.*", *(f"{fam.name}.{s}" for s in fam.steps)]))
    optional = [f.name for f in fam.fields if not f.required]
    rule: dict[str, Any] = {
        "id": f"r{index}",
        "types": [pattern],
        "to": draw(st.lists(st.sampled_from(PARTNERS), min_size=1, max_size=3, unique=True)),
        "fields": draw(st.lists(st.sampled_from(optional), max_size=5, unique=True)),
        "grondslag": "Wet op de proef art. 1",
        "doel": "Eigenschap toetsen",
        "art9": "AVG art. 9(2)(g)",
        "art10": "UAVG art. 33",
    }
    conditionable = [f for f in BOOL_CONDITION_FIELDS if f in fam.field_names]
    if conditionable and draw(st.booleans()):
        rule["when"] = {"field": draw(st.sampled_from(conditionable)), "equals": draw(st.booleans())}
    return rule


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=0, max_value=6))
    raw: dict[str, Any] = {"version": "prop-1", "rules": [draw(rules(i)) for i in range(count)]}
    if draw(st.booleans()):
        raw["houd_het_klein"] = {
            "applies_when": {"field": "schadelijke_praktijk", "equals": True},
            "lifted_when": {"field": "risicotaxatie_vastgelegd", "equals": True},
            "allowed_recipients": draw(st.lists(st.sampled_from(PARTNERS), max_size=3, unique=True)),
        }
    return raw


@st.composite
def inbox_records(draw: st.DrawFn) -> tuple[InRecord, dict[str, Any], str]:
    fam = family(draw(st.sampled_from(PARTNER_FAMILIES)))
    step = draw(st.sampled_from(fam.steps))
    datum = draw(event_strategy(fam.name, step))
    producer = draw(st.sampled_from(sorted(fam.producers[step])))
    env = Envelope.new(producer, fam.ce_type(step), datum["zaak_ref"], datum["tijdstip"])
    value = default_codec().encode(fam.name, datum)
    rec = InRecord(topics.inbox(producer), 0, 0, datum["zaak_ref"].encode(), value, env.to_headers())
    return rec, datum, producer


def _condition_holds(cond: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    return cond is None or event.get(cond["field"]) == cond["equals"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_policy=policies(), incoming=inbox_records())
def test_nothing_leaves_that_no_rule_released(raw_policy: dict[str, Any], incoming: Any) -> None:
    rec, datum, producer = incoming
    policy = Policy.model_validate(raw_policy)
    outcome = Router(policy).route(rec)
    if outcome.dead_letter is not None:
        assert not any(r.topic.startswith("keten.out.") for r in outcome.records)
        return
    fam = family(outcome.family or "")
    step = datum["stap"]
    names = (fam.ce_type(step), f"{fam.name}.{step}")
    hhk = raw_policy.get("houd_het_klein")
    outbox = [r for r in outcome.records if r.topic.startswith("keten.out.")]
    register = [r for r in outcome.records if r.topic == topics.VERSTREKKINGEN]
    assert len(register) == len(outbox)
    for out in outbox:
        recipient = out.topic.removeprefix("keten.out.")
        assert recipient != producer, "a partner's own event is not disclosed back to it"
        releasing = [
            r
            for r in raw_policy["rules"]
            if recipient in r["to"]
            and any(fnmatch.fnmatchcase(n, p) for p in r["types"] for n in names)
            and _condition_holds(r.get("when"), datum)
        ]
        assert releasing, f"{recipient} received {names[1]} without a rule releasing it"
        if hhk and datum.get("schadelijke_praktijk") and not datum.get("risicotaxatie_vastgelegd"):
            assert recipient in hhk["allowed_recipients"], "houd het klein was not applied"
        allowed = fam.required_fields.union(*(r["fields"] for r in releasing))
        fields_header = dict(out.headers)["ketenbus_fields"].decode().split(",")
        _, delivered = default_codec().decode(out.value, resolve=False, fields_hint=fields_header)
        assert set(delivered) <= allowed, f"{recipient} received unreleased {set(delivered) - allowed}"
    # Every recipient that a matching rule names and whose condition holds did receive it.
    for recipient in PARTNERS:
        if recipient == producer:
            continue
        expected = any(
            recipient in r["to"]
            and any(fnmatch.fnmatchcase(n, p) for p in r["types"] for n in names)
            and _condition_holds(r.get("when"), datum)
            for r in raw_policy["rules"]
        )
        if hhk and datum.get("schadelijke_praktijk") and not datum.get("risicotaxatie_vastgelegd"):
            expected = expected and recipient in hhk["allowed_recipients"]
        got = any(o.topic == topics.outbox(recipient) for o in outbox)
        assert got == expected, f"{recipient}: expected delivery={expected}, got {got}"
