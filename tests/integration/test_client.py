"""The Python client on the real embedded broker: typed publish, typed outbox with the legal
basis, each delivery once, and a commit only after the caller's handler returned."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connectors.client import Client
from connectors.outbox import Delivery
from schemas.models import Melding, Zsm
from schemas.registry import family
from streams import topics
from streams.validation import Rejection
from tests.bus import Publisher, Tap, case_ref
from tests.samples import T0

pytestmark = pytest.mark.integration


def acute_melding(zaak: str) -> Any:
    return Melding(
        stap="ontvangen",
        zaak_ref=zaak,
        tijdstip=T0,
        acuut=True,
        woonadres="Teststraat 1, Utrecht",
        signalen=["verwurging"],
        persoon_refs=[{"persoon_ref": f"P-{zaak}", "rol": "slachtoffer"}],
    )


def deliveries_for(client: Client, zaak: str, count: int, timeout: float = 30) -> list[Delivery]:
    found = []
    for d in client.outbox(idle_timeout=timeout):
        if d.zaak_ref == zaak:
            found.append(d)
            if len(found) == count:
                break
    return found


def test_publish_then_the_recipient_reads_a_typed_delivery(broker, router, tap: Tap) -> None:
    zaak = case_ref("CLI")
    with Client("veilig-thuis", broker.bootstrap) as vt:
        event_id = vt.publish(acute_melding(zaak))
    tap.wait_for(zaak, topics.outbox("politie"))
    with Client("politie", broker.bootstrap, group_id=f"t-{uuid.uuid4().hex}") as politie:
        (d,) = deliveries_for(politie, zaak, 1)
    assert d.id == event_id
    assert d.type == "nl.ketenbus.melding.ontvangen"
    assert d.envelope.partner == "veilig-thuis"
    assert d.grondslag and d.doel and d.policy_version
    # Exactly what the policy released to the police, as a model of just those fields.
    released = set(tap.records(zaak, topics.outbox("politie"))[0].header("ketenbus_fields").split(","))
    fields = set(type(d.event).model_fields)
    assert released <= fields <= released | family("Melding").required_fields
    withheld = set(Melding.model_fields) - fields
    assert "veiligheidsbeoordeling" in withheld  # not released to politie: not even an attribute
    assert d.event.woonadres == "Teststraat 1, Utrecht"  # type: ignore[attr-defined]


def test_publish_refuses_what_the_router_would_dead_letter(broker) -> None:
    with Client("veilig-thuis", broker.bootstrap) as vt, pytest.raises(Rejection):
        vt.publish(Zsm(stap="zaak_aangemeld", zaak_ref=case_ref("CLI"), tijdstip=T0))  # the police's


def test_a_delivery_is_committed_only_after_the_handler_returned(broker, router, tap: Tap) -> None:
    zaak = case_ref("CLI")
    with Client("veilig-thuis", broker.bootstrap) as vt:
        vt.publish(acute_melding(zaak))
    tap.wait_for(zaak, topics.outbox("politie"))
    group = f"t-{uuid.uuid4().hex}"

    class HandlerFailed(Exception):
        pass

    with Client("politie", broker.bootstrap, group_id=group) as first, pytest.raises(HandlerFailed):
        for d in first.outbox(idle_timeout=30):
            if d.zaak_ref == zaak:
                raise HandlerFailed  # the partner's system was down: not handled

    with Client("politie", broker.bootstrap, group_id=group) as second:
        # This time every delivery is handled: the loop runs on until the outbox is quiet.
        handled = [d.zaak_ref for d in second.outbox(idle_timeout=3) if d.zaak_ref == zaak]
        assert handled == [zaak]  # came again

    with Client("politie", broker.bootstrap, group_id=group) as third:
        assert deliveries_for(third, zaak, 1, timeout=5) == []  # handled once, not again


def test_a_redelivered_id_is_yielded_once(broker, tap: Tap, publisher: Publisher) -> None:
    # The same outbox record twice (as after a router restart): one delivery.
    zaak = case_ref("CLI")
    outbox = Tap(broker.bootstrap, watched=(topics.outbox("politie"),))
    try:
        with Client("veilig-thuis", broker.bootstrap) as vt:
            vt.publish(acute_melding(zaak))
        (rec,) = outbox.wait_for(zaak, topics.outbox("politie"), timeout=60)
    finally:
        outbox.close()
    publisher.raw(topics.outbox("politie"), rec.key, rec.value, rec.headers)
    tap.wait_for(zaak, topics.outbox("politie"), count=2)
    with Client("politie", broker.bootstrap, group_id=f"t-{uuid.uuid4().hex}") as politie:
        assert len(deliveries_for(politie, zaak, 2, timeout=5)) == 1
