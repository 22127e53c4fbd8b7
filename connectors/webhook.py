"""Webhook egress (DESIGN.md §10): each partner's outbox POSTed, record by record and in order, to
the partner's HTTPS endpoint as a JSON CloudEvent, signed with HMAC-SHA256.

Delivery is at least once and never out of order: a record's offset is committed only after the
endpoint answered 2xx, and a record that fails is retried (exponential backoff, forever) before
the next one is tried. A partner whose endpoint keeps failing therefore stops there; every
partner has its own thread, consumer group and HTTP client, so the others go on.

How a partner checks a delivery: the `ketenbus-signature` header is `t=<unix seconds>,v1=<hex>`,
where hex is HMAC-SHA256(secret, f"{t}." + body); `verify` below does it (constant time, with a
tolerance on t against replays). `ketenbus-delivery-id` is the event id: a redelivery (after a
restart or a lost answer) carries the same id, so the partner deduplicates on it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import random
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
from kafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram

from connectors.config import ConfigError, partner_pairs
from connectors.outbox import decode_delivery
from schemas.codec import EMPTY, CodecError
from schemas.envelope import EnvelopeError
from schemas.registry import PARTNERS
from streams import topics

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "ketenbus-signature"
DELIVERY_ID_HEADER = "ketenbus-delivery-id"
CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_VERSION = "v1"
TOLERANCE_S = 300  # how old (or how far ahead) a signature's timestamp may be

HTTP_TIMEOUT_S = 10.0
FIRST_BACKOFF_S = 0.2
MAX_POLL_RECORDS = 100
KEEPALIVE_POLL_S = 0.1  # how often a waiting worker polls its (paused) consumer

# -- metrics (labels: partner and outcome codes only, never anything of an event) ---------------

DELIVERIES = Counter(
    "ketenbus_webhook_deliveries_total",
    "Outbox records done with: delivered (a 2xx) or skipped as undecodable.",
    ["partner", "outcome"],
)
ATTEMPTS = Counter(
    "ketenbus_webhook_attempts_total",
    "HTTP attempts, by result: 2xx, 3xx, 4xx, 5xx, timeout, connection or error; all but 2xx are retried.",
    ["partner", "result"],
)
DELIVERY_SECONDS = Histogram(
    "ketenbus_webhook_delivery_seconds",
    "From the first attempt at a record to its 2xx, retries included.",
    ["partner"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
FAILING = Gauge(
    "ketenbus_webhook_consecutive_failures",
    "Failed attempts in a row at the current record: > 0 means the partner's deliveries wait.",
    ["partner"],
)


# -- signing --------------------------------------------------------------------------------------


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _mac(secret: str | bytes, body: bytes, t: int) -> str:
    return hmac.new(_key(secret), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, t: int) -> str:
    """The `ketenbus-signature` header value for `body` sent at unix time `t`."""
    return f"t={t},{SIGNATURE_VERSION}={_mac(secret, body, t)}"


def verify(
    secret: str | bytes, body: bytes, header: str | None, now: float, tolerance_s: float = TOLERANCE_S
) -> bool:
    """Whether `header` is a valid signature of `body` under `secret`, made within `tolerance_s`
    of `now`. Several v1 values are allowed (a sender rotating secrets); one must match."""
    if not header:
        return False
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if t is not None or not (value.isascii() and value.isdigit()):
                return False
            t = int(value)
        elif name == SIGNATURE_VERSION:
            candidates.append(value)
    if t is None or not candidates or abs(now - t) > tolerance_s:
        return False
    expected = _mac(secret, body, t)
    # compare every candidate, so the time taken says nothing about which one matched
    return any([hmac.compare_digest(expected.encode(), c.encode()) for c in candidates])


def request_headers(secret: str | bytes, body: bytes, delivery_id: str, t: int) -> dict[str, str]:
    return {
        "content-type": CONTENT_TYPE,
        DELIVERY_ID_HEADER: delivery_id,
        SIGNATURE_HEADER: sign(secret, body, t),
    }


def backoff_delay(attempt: int, first_s: float, cap_s: float, jitter: float) -> float:
    """Wait before retry number `attempt` (1: the first retry): `first_s` doubling per retry,
    at most `cap_s`, then scaled into [1/2, 1] of that by `jitter` in [0, 1) so that many
    deliveries that failed together do not retry in step."""
    full = min(cap_s, first_s * 2 ** min(attempt - 1, 60))
    return full * (0.5 + jitter / 2)


# -- configuration --------------------------------------------------------------------------------


class WebhookConfigError(ConfigError):
    pass


class WebhookError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    partner: str
    url: str
    secret: bytes = field(repr=False)


def parse_endpoints(webhooks: str | None, secrets: str | None) -> list[Endpoint]:
    """The endpoints of KETENBUS_WEBHOOKS with their secrets from KETENBUS_WEBHOOK_SECRETS.
    Every URL must be https (a delivery carries personal data), every endpoint needs a secret,
    and a secret without an endpoint is taken for a typo."""
    urls = partner_pairs(webhooks, "KETENBUS_WEBHOOKS", WebhookConfigError)
    keys = partner_pairs(secrets, "KETENBUS_WEBHOOK_SECRETS", WebhookConfigError)
    for partner, url in urls.items():
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise WebhookConfigError(f"KETENBUS_WEBHOOKS: the endpoint of {partner} must be an https:// URL")
    if missing := sorted(set(urls) - set(keys)):
        raise WebhookConfigError(f"KETENBUS_WEBHOOK_SECRETS: no secret for {', '.join(missing)}")
    if unused := sorted(set(keys) - set(urls)):
        raise WebhookConfigError(
            f"KETENBUS_WEBHOOK_SECRETS: a secret for {', '.join(unused)}, which has no endpoint"
        )
    return [Endpoint(p, urls[p], keys[p].encode()) for p in PARTNERS if p in urls]


def endpoints_of(settings: Settings) -> list[Endpoint]:
    return parse_endpoints(settings.webhooks, settings.webhook_secrets)


def group_id(app_id: str, partner: str) -> str:
    return f"{app_id}-webhook-{partner}"


# -- the worker -----------------------------------------------------------------------------------


def _result(response: httpx.Response | None, error: BaseException | None) -> str:
    if response is not None:
        return f"{response.status_code // 100}xx"
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.TransportError):
        return "connection"
    return "error"


def _retry_after(response: httpx.Response | None) -> float:
    value = response.headers.get("retry-after", "") if response is not None else ""
    return float(value) if value.isascii() and value.isdigit() else 0.0


def _undecodable(exc: Exception) -> str:
    """The reason code of a record that cannot be decoded: the codec's or envelope's own code."""
    if isinstance(exc, EnvelopeError | CodecError):
        return exc.reason
    return "fields.invalid"


class _Rebalances(ConsumerRebalanceListener):
    """Counts rebalances, so a worker sees that records it holds may no longer be its own."""

    def __init__(self) -> None:
        self.generation = 0

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.generation += 1

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.generation += 1


class PartnerWorker:
    """Delivers one partner's outbox to its endpoint; `run` until `stop` is set.

    Records are handled one at a time, in offset order. While a record waits (an HTTP request in
    flight, a backoff), the consumer keeps polling with every partition paused: that keeps it in
    its group (heartbeats, max.poll.interval) without reading further. After a rebalance the
    records in hand are dropped and reading starts again from the committed offsets, so a
    record may be delivered twice but never skipped.

    Every answer but a 2xx is retried, a 4xx or a redirect too: an endpoint that rejects an
    event holds up its partner until someone looks (ketenbus_webhook_consecutive_failures shows
    it) rather than losing the event. A record that cannot be decoded (an outbox only holds what
    the router wrote, so this means a bug or a foreign writer) is logged with a reason code,
    never its value, counted as `undecodable` and skipped: retrying cannot make it decodable.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        settings: Settings,
        stop: threading.Event,
        *,
        http_timeout_s: float = HTTP_TIMEOUT_S,
        first_backoff_s: float = FIRST_BACKOFF_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if not settings.bootstrap:
            raise WebhookConfigError("the webhook egress needs the bootstrap servers of a running bus")
        self.endpoint = endpoint
        self.partner = endpoint.partner
        self.topic = topics.outbox(endpoint.partner)
        self.group = group_id(settings.app_id, endpoint.partner)
        self.settings = settings
        self.stop = stop
        self.http_timeout_s = http_timeout_s
        self.first_backoff_s = first_backoff_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.rebalances = _Rebalances()

    # - lifecycle -

    def run(self) -> None:
        """Deliver until `stop`. A Kafka failure (broker away) restarts the consumer after a pause;
        anything else is a bug and ends the worker with the exception."""
        failures = 0
        while not self.stop.is_set():
            try:
                self._run_once()
                return
            except (KafkaError, OSError):
                failures += 1
                delay = backoff_delay(failures, 1.0, self.settings.webhook_max_backoff_s, self.rng.random())
                log.exception(
                    "webhook worker failed, restarting",
                    extra={"partner": self.partner, "delay_s": round(delay, 2)},
                )
                self.stop.wait(delay)

    def _consumer(self) -> KafkaConsumer:
        from streams.lag import client_kwargs

        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
            max_poll_interval_ms=int(s.max_poll_interval_s * 1000),
            max_poll_records=MAX_POLL_RECORDS,
            fetch_max_wait_ms=100,
            **client_kwargs(s),
        )
        consumer.subscribe([self.topic], listener=self.rebalances)
        return consumer

    def _run_once(self) -> None:
        consumer = self._consumer()
        cafile = self.settings.webhook_cafile
        tls = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        client = httpx.Client(verify=tls, timeout=self.http_timeout_s, follow_redirects=False)
        # The request runs here so that the consumer's thread can keep polling meanwhile.
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"webhook-http-{self.partner}")
        log.info("webhook worker started", extra={"partner": self.partner, "group": self.group})
        try:
            while not self.stop.is_set():
                if paused := consumer.paused():
                    consumer.resume(*paused)
                batch = consumer.poll(timeout_ms=200)
                if batch:
                    self._handle(consumer, client, pool, batch)
        finally:
            consumer.close(autocommit=False)
            pool.submit(client.close)  # after a request still in flight, not under it
            pool.shutdown(wait=False, cancel_futures=False)
            log.info("webhook worker stopped", extra={"partner": self.partner})

    # - one batch, one record -

    def _handle(
        self, consumer: KafkaConsumer, client: httpx.Client, pool: ThreadPoolExecutor, batch: Any
    ) -> None:
        generation = self.rebalances.generation
        consumer.pause(*consumer.assignment())
        for tp, records in batch.items():
            for i, record in enumerate(records):
                if self.stop.is_set() or self.rebalances.generation != generation:
                    return  # after a rebalance the coordinator has reset positions to the commits
                if not self._deliver(consumer, client, pool, tp, record, generation):
                    if self.rebalances.generation == generation and tp in consumer.assignment():
                        consumer.seek(tp, records[i].offset)  # read it again, not past it
                    return

    def _deliver(
        self,
        consumer: KafkaConsumer,
        client: httpx.Client,
        pool: ThreadPoolExecutor,
        tp: Any,
        record: Any,
        generation: int,
    ) -> bool:
        """Deliver `record` until a 2xx: True once delivered (or skipped), False when the worker
        stops or a rebalance took the records in hand away first."""
        try:
            if record.value is None:
                raise CodecError(EMPTY, "a record without a value")
            delivery = decode_delivery(
                record.topic, record.partition, record.offset, record.value, record.headers
            )
        except (ValueError, KeyError, TypeError) as exc:
            reason = _undecodable(exc)
            log.error(
                "undecodable outbox record skipped",
                extra={
                    "partner": self.partner,
                    "reason": reason,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            DELIVERIES.labels(self.partner, "undecodable").inc()
            self._commit(consumer, tp, record.offset + 1)
            return True

        body = delivery.to_json()
        started = time.monotonic()
        failures = 0
        while True:
            headers = request_headers(self.endpoint.secret, body, delivery.id, int(self.clock()))
            future = pool.submit(client.post, self.endpoint.url, content=body, headers=headers)
            self._keep_alive(consumer, math.inf, until=future.done)
            if not future.done():
                return False  # stopping; the request ends on its own and the record is redone later
            response, error = _outcome(future)
            result = _result(response, error)
            ATTEMPTS.labels(self.partner, result).inc()
            if result == "2xx":
                FAILING.labels(self.partner).set(0)
                DELIVERIES.labels(self.partner, "delivered").inc()
                DELIVERY_SECONDS.labels(self.partner).observe(time.monotonic() - started)
                if tp in consumer.assignment():
                    self._commit(consumer, tp, record.offset + 1)
                return self.rebalances.generation == generation
            failures += 1
            FAILING.labels(self.partner).set(failures)
            delay = max(
                backoff_delay(
                    failures, self.first_backoff_s, self.settings.webhook_max_backoff_s, self.rng.random()
                ),
                min(_retry_after(response), self.settings.webhook_max_backoff_s),
            )
            log.warning(
                "webhook delivery failed, retrying",
                extra={
                    "partner": self.partner,
                    "result": result,
                    "attempt": failures,
                    "delay_s": round(delay, 3),
                    "delivery_id": delivery.id,
                },
            )
            self._keep_alive(consumer, delay, until=lambda: self.rebalances.generation != generation)
            if self.stop.is_set() or self.rebalances.generation != generation:
                return False

    def _keep_alive(self, consumer: KafkaConsumer, seconds: float, until: Callable[[], bool]) -> None:
        """Wait up to `seconds` (or until `until()`, or stop) while polling the paused consumer."""
        deadline = time.monotonic() + seconds
        while not until() and not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            consumer.pause(*consumer.assignment())  # a rebalance hands out unpaused partitions
            for tp, got in consumer.poll(
                timeout_ms=max(1, int(min(remaining, KEEPALIVE_POLL_S) * 1000))
            ).items():
                consumer.seek(tp, got[0].offset)  # not now: read them again after the rebalance

    def _commit(self, consumer: KafkaConsumer, tp: Any, offset: int) -> None:
        try:
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
        except Exception:
            # The record was delivered; a later commit covers it, or it is delivered again.
            log.warning("webhook offset commit failed", exc_info=True, extra={"partner": self.partner})


def _outcome(future: Future[httpx.Response]) -> tuple[httpx.Response | None, BaseException | None]:
    error = future.exception()
    return (None, error) if error is not None else (future.result(), None)


# -- entry points ---------------------------------------------------------------------------------


def run(settings: Settings, stop: threading.Event, endpoints: list[Endpoint] | None = None) -> None:
    """Deliver the outbox of every configured partner until `stop` is set; each partner in a
    thread of its own. Raises WebhookConfigError on a bad configuration, and WebhookError when a
    worker ended by an error (it sets `stop` first: better no egress than one silently missing
    a partner)."""
    endpoints = endpoints_of(settings) if endpoints is None else endpoints
    if not endpoints:
        raise WebhookConfigError("no webhook endpoints configured (KETENBUS_WEBHOOKS)")
    workers = [PartnerWorker(e, settings, stop) for e in endpoints]
    failed: list[str] = []

    def guarded(worker: PartnerWorker) -> None:
        try:
            worker.run()
        except Exception:
            log.exception("webhook worker ended by an error", extra={"partner": worker.partner})
            failed.append(worker.partner)
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(w,), name=f"webhook-{w.partner}", daemon=True) for w in workers
    ]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(30)
    if failed:
        raise WebhookError(f"webhook worker(s) failed: {', '.join(failed)}")


def main(settings: Settings) -> int:
    """`ketenbus webhooks`: run the egress against the bus at KETENBUS_BOOTSTRAP until SIGINT/SIGTERM."""
    from streams import logs, metrics

    try:
        endpoints = endpoints_of(settings)
        if not endpoints:
            raise WebhookConfigError("no webhook endpoints configured (KETENBUS_WEBHOOKS)")
        if not settings.bootstrap:
            raise WebhookConfigError(
                "give KETENBUS_BOOTSTRAP: the webhook egress delivers from a running bus"
            )
    except WebhookConfigError as e:
        print(f"ketenbus webhooks: {e}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    port = metrics.serve(settings.metrics_port, settings.metrics_addr)
    names = ", ".join(e.partner for e in endpoints)
    print(f"ketenbus webhooks: {names}; metrics=http://127.0.0.1:{port}/metrics", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run(settings, stop, endpoints)
    except WebhookError as e:
        print(f"ketenbus webhooks: {e}", file=sys.stderr)
        return 1
    return 0
