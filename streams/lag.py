"""Consumer lag of the bus's own consumer groups, as the `ketenbus_consumer_lag_records` gauge.

Lag of a partition = its end offset (the next offset to be written) minus the offset the group
committed. Only partitions the group has committed appear: a group that has not committed a
partition yet has no position to measure from. The router's lanes are two groups,
`<app_id>-router` and `<app_id>-router-alarm` (`streams.router_worker`); the timer worker, a Faust
app, is `<app_id>-timers`.

The reporter runs in a daemon thread with its own kafka-python clients, so a slow broker never
stalls the event loop of the worker; a failed round is logged and retried at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streams import metrics

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("router", "timers")

LagKey = tuple[str, str, int]  # (group, topic, partition)
REQUEST_TIMEOUT_MS = 10_000


class LagError(RuntimeError):
    pass


def consumer_groups(app_id: str, roles: Iterable[str] | None = None) -> list[str]:
    """The consumer groups of `roles` (every role without)."""
    wanted = set(ROLES if roles is None else roles)
    groups = []
    if "router" in wanted:
        groups += [f"{app_id}-router", f"{app_id}-router-alarm"]
    if "timers" in wanted:
        groups.append(f"{app_id}-timers")
    return groups


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments for the security settings (`KETENBUS_SECURITY_PROTOCOL`,
    `KETENBUS_SASL_*`, `KETENBUS_SSL_CAFILE`)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password
    if settings.ssl_cafile:
        kwargs["ssl_cafile"] = str(settings.ssl_cafile)
    return kwargs


def aiokafka_kwargs(kafka_python: Mapping[str, Any]) -> dict[str, Any]:
    """The security settings of `client_kwargs` (kafka-python names) for aiokafka."""
    import ssl

    out: dict[str, Any] = {}
    if kafka_python.get("security_protocol", "PLAINTEXT") != "PLAINTEXT":
        out["security_protocol"] = kafka_python["security_protocol"]
        out["ssl_context"] = ssl.create_default_context(cafile=kafka_python.get("ssl_cafile"))
        for k in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
            if kafka_python.get(k):
                out[k] = kafka_python[k]
    return out


def _bounded(defaults: dict[str, Any], timeout_ms: int) -> dict[str, Any]:
    """The bootstrap timeout, where the kafka-python version has one (3.x)."""
    return {"bootstrap_timeout_ms": timeout_ms} if "bootstrap_timeout_ms" in defaults else {}


class _Clients:
    """One admin client and one group-less consumer, kept open between rounds."""

    def __init__(self, bootstrap: str, **client: Any) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        # A round must end in bounded time when the broker is away: no client default of 30 s+.
        client = {"request_timeout_ms": REQUEST_TIMEOUT_MS, **client}
        self.timeout_ms = int(client["request_timeout_ms"])
        self.admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="ketenbus-lag",
            **{**_bounded(KafkaAdminClient.DEFAULT_CONFIG, self.timeout_ms), **client},
        )
        try:
            self.consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                client_id="ketenbus-lag",
                group_id=None,
                enable_auto_commit=False,
                **{**_bounded(KafkaConsumer.DEFAULT_CONFIG, self.timeout_ms), **client},
            )
        except Exception:
            self.admin.close()
            raise

    def committed(self, group: str) -> dict[Any, int]:
        """TopicPartition -> committed offset, for the partitions the group committed."""
        if hasattr(self.admin, "list_group_offsets"):  # kafka-python >= 3
            offsets = self.admin.list_group_offsets({group: None}).get(group, {})
        else:  # kafka-python 2.x
            offsets = self.admin.list_consumer_group_offsets(group)
        return {tp: int(meta.offset) for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}

    def snapshot(self, groups: Sequence[str]) -> dict[LagKey, int]:
        committed: dict[str, dict[Any, int]] = {}
        failed: list[str] = []
        for group in groups:
            try:
                committed[group] = self.committed(group)
            except Exception as exc:  # one group we may not describe must not hide the others
                log.debug("group offsets not read", extra={"group": group, "error": type(exc).__name__})
                failed.append(group)
        if failed and len(failed) == len(groups):
            raise LagError(f"no committed offsets readable for {', '.join(failed)}")
        partitions = {tp for offsets in committed.values() for tp in offsets}
        ends = self.consumer.end_offsets(list(partitions), self.timeout_ms) if partitions else {}
        lag: dict[LagKey, int] = {}
        for group, offsets in committed.items():
            for tp, offset in offsets.items():
                end = ends.get(tp)
                if end is not None:
                    lag[(group, tp.topic, tp.partition)] = max(0, int(end) - offset)
        return lag

    def close(self) -> None:
        for c in (self.consumer, self.admin):
            try:
                c.close()
            except Exception:  # closing a broken client must not hide the real error
                log.debug("closing a lag client failed", exc_info=True)


def lag_snapshot(bootstrap: str, group_ids: Sequence[str], **client: Any) -> dict[LagKey, int]:
    """Records behind the end of each partition, per (group, topic, partition)."""
    clients = _Clients(bootstrap, **client)
    try:
        return clients.snapshot(group_ids)
    finally:
        clients.close()


class LagReporter:
    """Sets `ketenbus_consumer_lag_records` from a snapshot every `interval` seconds."""

    def __init__(self, bootstrap: str, groups: Sequence[str], interval: float = 5.0, **client: Any) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.bootstrap = bootstrap
        self.groups = list(groups)
        self.interval = interval
        self.client = client
        self._clients: _Clients | None = None
        self._reported: set[LagKey] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ketenbus-lag", daemon=True)

    def report_once(self) -> dict[LagKey, int]:
        """One round: snapshot, set the gauge, drop series of partitions no longer reported."""
        if self._clients is None:
            self._clients = _Clients(self.bootstrap, **self.client)
        try:
            lag = self._clients.snapshot(self.groups)
        except Exception:
            self._clients.close()
            self._clients = None  # reconnect next round
            raise
        for group, topic, partition in self._reported - set(lag):
            metrics.CONSUMER_LAG.remove(group, topic, str(partition))
        for (group, topic, partition), value in lag.items():
            metrics.CONSUMER_LAG.labels(group, topic, str(partition)).set(value)
        self._reported = set(lag)
        return lag

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.report_once()
                failures = 0
            except Exception as exc:
                failures += 1
                # The first failure in a row at warning level, the rest at debug: no log flood.
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "consumer lag not measured",
                    extra={"error": type(exc).__name__, "failures": failures},
                )
            self._stop.wait(self.interval)
        self.close()

    def close(self) -> None:
        """Close the clients (the next round opens new ones)."""
        if self._clients is not None:
            self._clients.close()
            self._clients = None

    def start(self) -> LagReporter:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def start_lag_reporter(
    bootstrap: str, groups: Sequence[str], interval: float = 5.0, **client: Any
) -> LagReporter:
    """Start a daemon thread that sets `ketenbus_consumer_lag_records` every `interval` seconds
    for `groups`; `client` are kafka-python security settings (see `client_kwargs`). Returns the
    reporter; `.stop()` ends it."""
    return LagReporter(bootstrap, groups, interval, **client).start()


async def lag_reporter(bootstrap: str, groups: Sequence[str], interval: float = 5.0, **client: Any) -> None:
    """The same as a coroutine (runs until cancelled); each round runs in a worker thread."""
    import asyncio

    reporter = LagReporter(bootstrap, groups, interval, **client)
    try:
        while True:
            try:
                await asyncio.to_thread(reporter.report_once)
            except Exception as exc:
                log.warning("consumer lag not measured", extra={"error": type(exc).__name__})
            await asyncio.sleep(interval)
    finally:
        reporter.close()
