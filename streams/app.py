"""The Faust application of the timer worker (the router runs without Faust: `streams.router_worker`)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust

from streams.router import OutRecord
from streams.settings import Settings

log = logging.getLogger(__name__)

# faust-streaming hard-codes fetch_max_wait_ms=1500 for its worker consumer. A broker that holds
# a fetch for the whole wait when data arrives during it (Tansu does) then adds up to 1.5 s to
# every hop: an escalation would wait behind it. 20 ms keeps a quiet bus cheap and a busy one fast.
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


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    """The timer worker's Faust app; its consumer group is `<app id>-timers`."""
    app_id = f"{settings.app_id}-timers"
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
    from streams.timer_worker import install

    install(app, settings)
    return app


async def produce(app: faust.App, records: Sequence[OutRecord]) -> None:
    """Send all records, then wait until the broker acknowledged every one."""
    futures = [
        await app.producer.send(r.topic, r.key, r.value, partition=None, timestamp=None, headers=r.headers)
        for r in records
    ]
    if futures:
        await asyncio.gather(*futures)
