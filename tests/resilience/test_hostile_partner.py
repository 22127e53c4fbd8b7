"""A hostile (or broken) partner on its Kafka inbox: it forges another partner's source,
publishes a type it may not produce, replays old ids and floods its inbox. Each rejection is
in the DLQ and counted in the router's metrics; other partners' events, an alarm above all,
still get through."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from schemas import default_codec
from schemas.envelope import Envelope, header
from streams import topics
from tests.bus import Publisher, RouterProcess, Tap, case_ref
from tests.samples import sample

pytestmark = pytest.mark.integration

FLOOD = 5_000


def metrics_url(router_log: Path) -> str:
    found = re.findall(r"metrics=(\S+/metrics)", router_log.read_text(errors="replace"))
    assert found, "the router printed no metrics address"
    return found[0]


def dlq_count(url: str, reason: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    name = f'ketenbus_dlq_total{{reason="{reason}"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def send(publisher: Publisher, partner: str, family: str, step: str, zaak: str, **kw) -> str:
    return publisher.event(partner, family, sample(family, step, zaak), **kw)


def test_forgery_wrong_types_and_replays_are_rejected_and_counted(
    router: RouterProcess, router_log: Path, publisher: Publisher, tap: Tap
) -> None:
    url = metrics_url(router_log)
    reasons = ("envelope.source_mismatch", "semantiek.producer_not_allowed", "duplicate.ce_id")
    before = {r: dlq_count(url, r) for r in reasons}

    forged, wrong_inbox, wrong_type, replay = (case_ref("HOSTILE") for _ in range(4))
    # politie writes veilig-thuis's source into its own inbox,
    send(publisher, "politie", "Melding", "onderzoek_gestart", forged, source_partner="veilig-thuis")
    # and its own source into veilig-thuis's inbox,
    send(publisher, "politie", "Zsm", "zaak_aangemeld", wrong_inbox, inbox=topics.inbox("veilig-thuis"))
    # veilig-thuis registers a ZSM case, which only the police may,
    send(publisher, "veilig-thuis", "Zsm", "zaak_aangemeld", wrong_type)
    # and politie sends an id again, for another case.
    first = send(publisher, "politie", "Zsm", "zaak_aangemeld", replay)
    again = case_ref("HOSTILE")
    send(publisher, "politie", "Zsm", "zaak_aangemeld", again, ce_id=first)

    expected = {
        forged: "envelope.source_mismatch",
        wrong_inbox: "envelope.source_mismatch",
        wrong_type: "semantiek.producer_not_allowed",
        again: "duplicate.ce_id",
    }
    for zaak, reason in expected.items():
        (dead,) = tap.wait_for(zaak, topics.DLQ)
        assert header(dead.headers, "ketenbus_reden") == reason
        assert not [s for s in tap.records(zaak) if s.topic in topics.OUTBOXES], f"{zaak} reached an outbox"
    tap.wait_for(replay, topics.EVENTS)  # the original of the replayed id went through

    def counted() -> bool:
        after = {r: dlq_count(url, r) for r in reasons}
        return (
            after["envelope.source_mismatch"] >= before["envelope.source_mismatch"] + 2
            and after["semantiek.producer_not_allowed"] >= before["semantiek.producer_not_allowed"] + 1
            and after["duplicate.ce_id"] >= before["duplicate.ce_id"] + 1
        )

    deadline = time.monotonic() + 10
    while not counted():
        assert time.monotonic() < deadline, "the router's metrics did not count every rejection"
        time.sleep(0.2)


def test_an_alarm_gets_through_while_a_partner_floods_its_inbox(
    router: RouterProcess, publisher: Publisher, tap: Tap
) -> None:
    flood_case = case_ref("FLOOD")
    datum = sample("Melding", "monitoring_moment", flood_case)
    value = default_codec().encode("Melding", datum)
    for _ in range(FLOOD):
        env = Envelope.new(
            "veilig-thuis", "nl.ketenbus.melding.monitoring_moment", flood_case, datum["tijdstip"]
        )
        publisher.raw(topics.inbox("veilig-thuis"), flood_case.encode(), value, env.to_headers(), wait=False)
    publisher.flush()

    alarm_case = case_ref("ALARM")
    started = time.monotonic()
    send(publisher, "alarmcentrale", "SlachtofferdeviceAlert", "alarm", alarm_case)
    tap.wait_for(alarm_case, topics.outbox("politie"), timeout=30)
    alarm_s = time.monotonic() - started
    backlog_left = FLOOD - len(tap.records(flood_case, topics.EVENTS))

    calm = case_ref("CALM")
    send(publisher, "politie", "Zsm", "zaak_aangemeld", calm)
    tap.wait_for(calm, topics.EVENTS, timeout=120)  # the other partners' events still flow
    tap.wait_for(flood_case, topics.EVENTS, count=FLOOD, timeout=120)  # and the flood is not lost
    print(f"\nalarm delivered in {alarm_s * 1000:.0f} ms with {backlog_left} flood events still queued")
    assert alarm_s < 5.0
