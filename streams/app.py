"""The Faust application: thin shells around the pure router (and, later, timers).

Two router lanes, each one agent with concurrency 1 (faust-streaming loses offsets with more):
the alarm lane reads only `keten.in.alarmcentrale`, so a device alarm never waits behind a
backlog of other families; the main lane reads every other inbox. Each lane takes a batch of
events, routes it with `Router.route_batch`, sends every output and awaits the broker's
acknowledgements before the batch's offsets are acknowledged: at-least-once.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import EventT

from streams import metrics, topics
from streams import policy as policy_mod
from streams.router import InRecord, OutRecord, Router
from streams.settings import Settings

log = logging.getLogger(__name__)

ALARM_INBOX = topics.inbox("alarmcentrale")
# faust-streaming hard-codes fetch_max_wait_ms=1500 for its worker consumer. A broker that holds
# a fetch for the whole wait when data arrives during it (Tansu does) then adds up to 1.5 s to
# every hop: an alarm would wait behind it. 20 ms keeps a quiet bus cheap and a busy one fast.
FETCH_MAX_WAIT_MS = 20
# Bounded polls: one poll must be processed well within the max poll interval, or the consumer
# is thrown out of its group mid-backlog and (faust-streaming #523, aiokafka #727) stalls.
MAX_POLL_RECORDS = 500


def _short_fetch_waits() -> None:
    from faust.transport.drivers import aiokafka as driver

    original = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_ketenbus", False):
        return

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    create._ketenbus = True  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def kafka_client_settings(settings: Settings) -> dict[str, Any]:
    """Faust broker settings for the configured security protocol."""
    conf: dict[str, Any] = {}
    if settings.security_protocol != "PLAINTEXT":
        import ssl

        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.sasl_mechanism:
            conf["broker_credentials"] = faust.SASLCredentials(
                username=settings.sasl_username,
                password=settings.sasl_password,
                mechanism=settings.sasl_mechanism,
                ssl_context=context,
            )
        else:
            conf["broker_credentials"] = context
    return conf


ROLES = ("router", "timers")


def create_app(
    settings: Settings, bootstrap: str, roles: Sequence[str] = ROLES, router: Router | None = None
) -> faust.App:
    """One Faust app per process. Each set of roles is its own consumer group, so a router and
    a timer worker can run (and fail) in separate processes."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"roles must be some of {ROLES}, got {sorted(roles)}")
    app_id = f"{settings.app_id}-{'-'.join(r for r in ROLES if r in roles)}"
    _short_fetch_waits()
    datadir = Path(tempfile.gettempdir()) / f"ketenbus-{app_id}"
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        topic_allow_declare=True,  # changelog and repartition topics; ours exist already
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_max_poll_interval=settings.max_poll_interval_s,
        broker_commit_every=1000,
        broker_max_poll_records=MAX_POLL_RECORDS,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        producer_acks=-1,
        producer_linger=0.002,
        **kafka_client_settings(settings),
    )
    if "router" in roles:
        if router is None:
            router = Router(policy_mod.load(settings.policy_file))
        main_inboxes = [t for t in topics.INBOXES if t != ALARM_INBOX]
        _router_lane(app, router, "alarm", [ALARM_INBOX], settings)
        _router_lane(app, router, "main", main_inboxes, settings)
    if "timers" in roles:
        from streams.timer_worker import install

        install(app, settings)
    return app


def _router_lane(
    app: faust.App, router: Router, lane: str, inboxes: Sequence[str], settings: Settings
) -> None:
    channel = app.topic(
        *inboxes, value_type=bytes, key_type=bytes, value_serializer="raw", key_serializer="raw"
    )
    batch_size = 50 if lane == "alarm" else settings.router_batch_size
    within = 0.001 if lane == "alarm" else settings.router_batch_within_s

    async def route(stream: Any) -> None:  # faust's StreamT stub lacks take_events
        async for events in stream.take_events(batch_size, within=within):
            batch = [_in_record(e) for e in events]
            outcomes = router.route_batch(batch)
            await produce(app, [r for o in outcomes for r in o.records])
            metrics.observe_written(outcomes, lane, len(batch))

    route.__name__ = f"router_{lane}"
    app.agent(channel, name=f"router-{lane}", concurrency=1)(route)


def _in_record(event: EventT) -> InRecord:
    m = event.message
    return InRecord(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        value=m.value,
        headers=list(cast(Sequence[tuple[str, bytes | None]], m.headers or ())),
    )


async def produce(app: faust.App, records: Sequence[OutRecord]) -> None:
    """Send all records, then wait until the broker acknowledged every one."""
    futures = [
        await app.producer.send(r.topic, r.key, r.value, partition=None, timestamp=None, headers=r.headers)
        for r in records
    ]
    if futures:
        await asyncio.gather(*futures)
