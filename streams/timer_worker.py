"""The Faust shell around the timer core: deadlines from `keten.events`, escalations into
`keten.in.ketenbus`, where the router treats them like any other event.

Every escalation is published, and its acknowledgement awaited, before the state that says it
fired is written: a crash in between fires it again with the same id, never loses it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import faust

from schemas.codec import Codec, default_codec
from schemas.envelope import Envelope, header
from schemas.registry import BUS, family
from streams import metrics, topics
from streams.app import produce
from streams.clock import (
    TICK_KEY,
    TICK_TYPE,
    VirtualClock,
    done_headers,
    done_value,
    parse_tick,
    wall_now,
)
from streams.deadlines import load_termijnen
from streams.router import InRecord, OutRecord, Router
from streams.settings import Settings
from streams.timers import Escalation, RadarBook, TimerBook, from_ms, to_ms

log = logging.getLogger(__name__)
ESCALATIE = family("Escalatie")


def escalation_record(codec: Codec, esc: Escalation) -> OutRecord:
    """An escalation as a record on the bus's own inbox."""
    env = Envelope.from_bus(esc.id, ESCALATIE.ce_type(esc.stap), from_ms(esc.due_ms), esc.zaak)
    return OutRecord(
        topics.inbox(BUS), esc.zaak.encode(), codec.encode(ESCALATIE.name, esc.datum), env.to_headers()
    )


def install(app: faust.App, settings: Settings) -> None:
    termijnen = load_termijnen(settings.termijnen_file)
    codec = default_codec()
    table_args: dict[str, Any] = {
        "default": None,
        "partitions": settings.partitions,
        "schema": faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"),
        # Sweeps write outside stream iteration; keys hash like the keten.events keys do.
        "use_partitioner": True,
    }
    deadlines = app.Table("ketenbus-termijnen", **table_args)
    radar_state = app.Table("ketenbus-radar", **table_args)
    book = TimerBook(termijnen, store=deadlines)
    radar = RadarBook(termijnen, store=radar_state)
    clock = VirtualClock()
    virtual = settings.clock == "virtual"

    events = app.topic(
        topics.EVENTS, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
    )
    radar_topic = app.topic(
        topics.RADAR, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
    )

    @deadlines.on_recover
    async def _rebuild() -> None:
        book.rebuild()
        _gauge(book)
        log.info("timer state recovered", extra={"pending": book.pending_total})

    async def publish(fired: Sequence[Escalation], now_ms: int) -> None:
        await produce(app, [escalation_record(codec, esc) for esc in fired])
        for esc in fired:
            metrics.ESCALATIONS.labels(esc.timer, esc.stap).inc()
            metrics.FIRING_LAG.labels(esc.timer).observe(max(0.0, (now_ms - esc.due_ms) / 1000))

    async def fire_due(partition: int, now_ms: int) -> int:
        fired = book.due(partition, now_ms)
        if fired:
            await publish(fired, now_ms)
            book.confirm(fired)
            _gauge(book)
        return len(fired)

    async def on_tick(partition: int, value: bytes) -> None:
        now_ms = clock.advance(parse_tick(value))
        count = await fire_due(partition, now_ms)
        done = await app.producer.send(
            topics.KLOK,
            TICK_KEY,
            done_value(partition, now_ms, count),
            partition=None,
            timestamp=None,
            headers=done_headers(),
        )
        await done

    async def on_event(partition: int, headers: Any, value: bytes) -> None:
        env = Envelope.from_headers(headers)
        _, record = codec.decode(value)
        fired = book.on_event(env.type, record, env.id, partition)
        if fired:
            await publish(fired, to_ms(record["tijdstip"]))
            book.confirm(fired)
        for pattern, person, rol in radar.observations(env.type, record):
            observation = {
                "pattern": pattern,
                "persoon_ref": person,
                "zaak": record["zaak_ref"],
                "at_ms": to_ms(record["tijdstip"]),
                "event_id": env.id,
                "rol": rol,
            }
            await radar_topic.send(key=person.encode(), value=json.dumps(observation).encode())
        _gauge(book)

    @app.agent(events, name="timers", concurrency=1)
    async def on_events(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            try:
                if header(m.headers, "ce_type") == TICK_TYPE:
                    if virtual:
                        await on_tick(m.partition, m.value)
                else:
                    await on_event(m.partition, m.headers, m.value)
            except Exception as exc:
                # Never stop on one record; keep it, with the reason, where an operator looks.
                reason = getattr(exc, "reason", f"timers.{type(exc).__name__}")
                log.exception("timer worker could not process a record", extra={"reason": reason})
                metrics.DLQ.labels(reason).inc()
                await dead_letter(m, reason)

    async def dead_letter(m: Any, reason: str) -> None:
        letter = Router.dead_letter_record(
            codec,
            InRecord(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or ())),
            reason,
            "the timer worker could not process this record",
            wall_now(),
        )
        await produce(app, [letter])

    @app.agent(radar_topic, name="radar", concurrency=1)
    async def on_radar(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            try:
                o = json.loads(m.value)
                esc, key, state = radar.observe(
                    o["pattern"], o["persoon_ref"], o["zaak"], from_ms(o["at_ms"]), o["event_id"], o["rol"]
                )
                if esc is not None:
                    await publish([esc], o["at_ms"])
                radar_state[key] = state
            except Exception as exc:  # one bad observation must not stop the radar
                reason = f"radar.{type(exc).__name__}"
                log.exception("radar could not process an observation", extra={"reason": reason})
                metrics.DLQ.labels(reason).inc()
                await dead_letter(m, reason)

    if not virtual:

        @app.timer(settings.sweep_interval_s, name="timer-sweep")
        async def sweep() -> None:
            now_ms = to_ms(wall_now())
            for partition in list(book.partitions()):
                await fire_due(partition, now_ms)


def _gauge(book: TimerBook) -> None:
    for name, count in book.pending_per_timer.items():
        metrics.TIMERS_PENDING.labels(name).set(count)
