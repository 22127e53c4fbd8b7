"""With deadlines pending, the timer worker is killed (SIGKILL) and restarted: every deadline
still fires, and a receiver that drops duplicate ids sees each escalation exactly once."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pytest

from schemas import default_codec
from streams import topics
from tests.bus import IsolatedBus, case_ref, isolated_bus

pytestmark = pytest.mark.integration

T0 = dt.datetime(2031, 5, 6, 9, 0, tzinfo=dt.UTC)
CASES = 40


@pytest.fixture
def bus(tmp_path) -> Iterator[IsolatedBus]:
    with isolated_bus(tmp_path / "workers.log", "t-durable") as b:
        yield b


def escalation_ids(bus: IsolatedBus, cases: list[str]) -> Counter[str]:
    bus.tap.sync()
    seen: Counter[str] = Counter()
    for zaak in cases:
        for s in bus.tap.records(zaak, topics.inbox("ketenbus")):
            seen[default_codec().decode(s.value)[1]["escalatie_id"]] += 1
    return seen


def test_every_pending_deadline_fires_once_across_a_sigkill(bus: IsolatedBus) -> None:
    # 40 ZSM cases registered one hour apart: each has a 6-hour zsm-beslissing deadline.
    cases = [case_ref("DUR") for _ in range(CASES)]
    for i, zaak in enumerate(cases):
        bus.publisher.event(
            "politie",
            "Zsm",
            {"stap": "zaak_aangemeld", "zaak_ref": zaak, "tijdstip": T0 + dt.timedelta(hours=i)},
            wait=False,
        )
    bus.publisher.flush()
    bus.tap.wait(lambda t: all(t.records(z, topics.EVENTS) for z in cases), message="all cases routed")

    # Half fall due, then the worker dies without warning.
    bus.clock.tick(T0 + dt.timedelta(hours=6 + CASES // 2 - 0.5))
    before = escalation_ids(bus, cases)
    assert len(before) == CASES // 2
    bus.restart_timers(kill=True)

    # The rest fall due after the restart, on state recovered from the changelog.
    bus.clock.tick(T0 + dt.timedelta(hours=6 + CASES), timeout=120)
    after = escalation_ids(bus, cases)
    assert len(after) == CASES, f"lost {CASES - len(after)} escalation(s)"
    per_case = Counter(
        default_codec().decode(s.value)[1]["zaak_ref"]
        for z in cases
        for s in bus.tap.records(z, topics.inbox("ketenbus"))
    )
    assert set(per_case) == set(cases)
    # A re-fired escalation may appear twice on the wire, always with the id of its first firing.
    duplicates = sum(n - 1 for n in after.values())

    # The router delivers each escalation to om once (it drops a re-fired id), and om's
    # deduplicating consumer would drop any that slipped through.
    def om_escalations(t) -> list[str]:
        return [
            s.header("ce_id") or ""
            for z in cases
            for s in t.records(z, topics.outbox("om"))
            if (s.header("ce_type") or "").startswith("nl.ketenbus.escalatie.")
        ]

    bus.tap.wait(lambda t: len(set(om_escalations(t))) == CASES, message="every escalation delivered to om")
    assert set(om_escalations(bus.tap)) == set(after)
    print(
        f"escalations: {CASES}, duplicates on the wire after SIGKILL: {duplicates},"
        f" ticks resent: {bus.clock.resent}"
    )
