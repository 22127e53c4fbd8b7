"""HTTP ingress: partners without a Kafka client POST CloudEvents (JSON, structured mode).

`POST /v1/events` authenticates the partner (API key, or a client certificate under mTLS),
checks the event as the router would, writes it to the partner's inbox as Avro, and answers
202 only after the broker acknowledged the write. Nothing is acknowledged that is not stored:

    401  no or an unknown API key (or a key and a certificate naming different partners)
    403  `source` is not the authenticated partner, or that partner may not produce the type
    400  not JSON, not a CloudEvent, or data that fails the schema or the law's hard rules;
         the body names each failing field (never its value)
    413  body larger than KETENBUS_INGRESS_MAX_BYTES
    415  a content type other than JSON
    429  the partner posts faster than KETENBUS_INGRESS_RATE_PER_S (burst KETENBUS_INGRESS_BURST);
         one partner's flood does not slow another's events
    202  {"id": ...} once the broker acknowledged the write
    200  {"id": ..., "status": "duplicate"}: this partner's id was accepted before; not written again
    503  the broker did not acknowledge in time (Retry-After); the partner retries with the same id

Duplicates are recognised by (partner, id) within this process's memory (bounded); across
restarts the router drops an id it routed before, so a retried event is still routed once.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from connectors.config import ConfigError, partner_pairs
from schemas import default_codec
from schemas.envelope import SOURCE_PREFIX, Envelope, EnvelopeError, parse_time, source_for
from schemas.models import to_avro, validate
from schemas.registry import PARTNERS, resolve_type
from streams import topics
from streams.router import SeenIds
from streams.settings import Settings
from streams.validation import Rejection, check_event

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "ketenbus_ingress_requests_total", "HTTP ingress requests, by partner and status.", ["partner", "status"]
)
WRITE_LATENCY = Histogram(
    "ketenbus_ingress_write_seconds",
    "From request to the broker's acknowledgement of the write.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

JSON_TYPES = ("application/cloudevents+json", "application/json")
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "data")
MAX_ID_LENGTH = 200
SEEN_CAPACITY = 1_000_000  # (partner, id) pairs remembered


class ApiKeys:
    """Which partner an API key belongs to. Keys are compared in constant time."""

    def __init__(self, keys_by_partner: Mapping[str, str]) -> None:
        if len(set(keys_by_partner.values())) != len(keys_by_partner):
            raise ConfigError("two partners share an API key")
        self._keys = [(k.encode(), p) for p, k in keys_by_partner.items()]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        text = settings.api_keys or ""
        if settings.api_keys_file is not None:
            text += "\n" + Path(settings.api_keys_file).read_text(encoding="utf-8")
        return cls(partner_pairs(text, "KETENBUS_API_KEYS"))

    def partner(self, key: str | None) -> str | None:
        if not key:
            return None
        given = key.encode()
        found = None
        for known, partner in self._keys:
            if hmac.compare_digest(known, given):
                found = partner
        return found

    def __len__(self) -> int:
        return len(self._keys)


def problem(
    status: int, title: str, *, reason: str, errors: list[dict[str, str]] | None = None
) -> web.Response:
    """An RFC 9457 problem document; never quotes a submitted value."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "reason": reason}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status, content_type="application/problem+json")


def unavailable() -> web.Response:
    response = problem(503, "The bus could not store the event; retry", reason="broker.unavailable")
    response.headers["Retry-After"] = "5"
    return response


class TokenBucket:
    """Per-partner rate limit: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._state: dict[str, tuple[float, float]] = {}  # partner -> (tokens, at)

    def take(self, partner: str) -> float:
        """0.0 when allowed; otherwise the seconds until a token is available."""
        now = self.clock()
        tokens, at = self._state.get(partner, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._state[partner] = (tokens - 1.0, now)
            return 0.0
        self._state[partner] = (tokens, now)
        return (1.0 - tokens) / self.rate


class Rejected(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": "data." + ".".join(str(p) for p in e["loc"]), "message": e["msg"], "code": e["type"]}
        for e in exc.errors(include_input=False, include_url=False)
    ]


def parse_body(raw: bytes, partner: str) -> tuple[Envelope, str, dict[str, Any]]:
    """Parse and check a request body from `partner`; raises Rejected with the response to give."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise Rejected(problem(400, "Body is not JSON", reason="http.invalid_json")) from None
    return parse_cloudevent(body, partner)


def parse_cloudevent(body: Any, partner: str) -> tuple[Envelope, str, dict[str, Any]]:
    """Check a structured-mode CloudEvent from `partner`; returns (envelope, family, datum).
    Raises Rejected with the response to give."""
    if not isinstance(body, dict):
        raise Rejected(problem(400, "Not a CloudEvent", reason="cloudevent.not_an_object"))
    missing = [
        {"field": a, "message": "required attribute is missing", "code": "missing"}
        for a in REQUIRED_ATTRIBUTES
        if body.get(a) in (None, "")
    ]
    if missing:
        raise Rejected(
            problem(400, "Missing CloudEvents attributes", reason="cloudevent.missing", errors=missing)
        )
    errors = []
    for a in ("specversion", "id", "source", "type", "time", "subject"):
        if not isinstance(body[a], str):
            errors.append({"field": a, "message": "must be a string", "code": "string_type"})
    if not isinstance(body["data"], dict):
        errors.append({"field": "data", "message": "must be a JSON object", "code": "dict_type"})
    if errors:
        raise Rejected(
            problem(400, "Invalid CloudEvents attributes", reason="cloudevent.invalid", errors=errors)
        )
    if body["specversion"] != "1.0":
        raise Rejected(problem(400, "Unsupported specversion", reason="cloudevent.specversion"))
    if len(body["id"]) > MAX_ID_LENGTH:
        raise Rejected(problem(400, "id too long", reason="cloudevent.id_too_long"))
    if body.get("datacontenttype", "application/json") != "application/json":
        raise Rejected(problem(400, "data must be application/json", reason="cloudevent.datacontenttype"))
    if body["source"] != source_for(partner):
        # Checked before the type: a partner must not learn more about another's events.
        reason = "auth.source_mismatch" if body["source"].startswith(SOURCE_PREFIX) else "auth.bad_source"
        raise Rejected(problem(403, "source is not the authenticated partner", reason=reason))
    try:
        fam, step = resolve_type(body["type"])
    except KeyError:
        raise Rejected(problem(400, "Unknown event type", reason="envelope.unknown_type")) from None
    if partner not in fam.producers.get(step, frozenset()):
        raise Rejected(
            problem(403, f"{partner} may not produce this type", reason="auth.producer_not_allowed")
        )
    try:
        time = parse_time(body["time"])
    except EnvelopeError as exc:
        raise Rejected(problem(400, "Invalid time", reason=exc.reason)) from None
    try:
        model = validate(fam, body["data"])
    except ValidationError as exc:
        raise Rejected(
            problem(400, "data does not match the schema", reason="schema.invalid", errors=field_errors(exc))
        ) from None
    datum = to_avro(model)
    env = Envelope(
        id=body["id"], source=body["source"], type=fam.ce_type(step), time=time, subject=body["subject"]
    )
    try:
        check_event(partner, partner, env.type, env.subject, fam, datum)
    except Rejection as exc:
        raise Rejected(problem(400, exc.detail, reason=exc.reason)) from None
    return env, fam.name, datum


class BrokerLink:
    """The ingress's producer. Started on first use and again after a failure, so the ingress
    can start (and answer 503) while the broker is still down."""

    def __init__(self, bootstrap: str, timeout_s: float, client_kwargs: Mapping[str, Any]) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.client_kwargs = dict(client_kwargs)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    acks="all",
                    linger_ms=1,
                    request_timeout_ms=int(self.timeout_s * 1000),
                    **self.client_kwargs,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def write(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        producer = await self.producer()
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key, headers=headers), self.timeout_s)

    async def reachable(self) -> bool:
        try:
            producer = await self.producer()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), min(self.timeout_s, 2.0))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class Ingress:
    def __init__(
        self, keys: ApiKeys, link: BrokerLink, *, mtls: bool = False, limit: TokenBucket | None = None
    ) -> None:
        self.keys = keys
        self.link = link
        self.mtls = mtls
        self.limit = limit
        self.codec = default_codec()
        self.seen = SeenIds(SEEN_CAPACITY)
        self._inflight: dict[str, asyncio.Future[web.Response]] = {}

    def authenticate(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("X-API-Key")
        by_key = self.keys.partner(key)
        by_cert = self._cert_partner(request) if self.mtls else None
        if by_key and by_cert and by_key != by_cert:
            return None
        return by_key or by_cert

    @staticmethod
    def _cert_partner(request: web.Request) -> str | None:
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        for rdn in (cert or {}).get("subject", ()):
            for name, value in rdn:
                if name == "commonName" and value in PARTNERS:
                    return str(value)
        return None

    async def post_event(self, request: web.Request) -> web.Response:
        partner = self.authenticate(request)
        if partner is None:
            REQUESTS.labels("-", "401").inc()
            response = problem(401, "Unknown or missing API key", reason="auth.unauthenticated")
            response.headers["WWW-Authenticate"] = 'Bearer realm="ketenbus"'
            return response
        response = await self._post_event(request, partner)
        REQUESTS.labels(partner, str(response.status)).inc()
        return response

    async def _post_event(self, request: web.Request, partner: str) -> web.Response:
        wait = self.limit.take(partner) if self.limit is not None else 0.0
        if wait:
            response = problem(429, "Too many events; slow down", reason="http.rate_limited")
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        if request.content_type not in JSON_TYPES:
            return problem(415, "Send application/cloudevents+json", reason="http.unsupported_media_type")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return problem(413, "Body too large", reason="http.too_large")
        try:
            env, family_name, datum = parse_body(raw, partner)
        except Rejected as r:
            return r.response
        key = f"{partner}/{env.id}"
        if key in self.seen:
            return web.json_response({"id": env.id, "status": "duplicate"}, status=200)
        pending = self._inflight.get(key)
        if pending is not None:  # the same id, concurrently: one write, the same answer
            first = await asyncio.shield(pending)
            if first.status == 202:
                return web.json_response({"id": env.id, "status": "duplicate"}, status=200)
            return unavailable()
        future: asyncio.Future[web.Response] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await self._write(env, family_name, datum, partner)
            if response.status == 202:
                self.seen.add(key)
            future.set_result(response)
            return response
        finally:
            if not future.done():  # the write was cancelled: concurrent twins must not wait forever
                future.set_result(unavailable())
            del self._inflight[key]

    async def _write(
        self, env: Envelope, family_name: str, datum: dict[str, Any], partner: str
    ) -> web.Response:
        value = self.codec.encode(family_name, datum)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self.link.write(topics.inbox(partner), env.subject.encode(), value, env.to_headers())
        except Exception as exc:  # the broker did not acknowledge: the event is not accepted
            log.warning("broker did not acknowledge an ingress write", extra={"reason": type(exc).__name__})
            return unavailable()
        WRITE_LATENCY.observe(loop.time() - started)
        return web.json_response({"id": env.id, "status": "accepted"}, status=202)

    async def health(self, request: web.Request) -> web.Response:
        up = await self.link.reachable()
        return web.json_response(
            {"status": "ok" if up else "unavailable", "broker": up}, status=200 if up else 503
        )

    async def openapi(self, request: web.Request) -> web.Response:
        from connectors.openapi import document

        return web.json_response(document())


def build_app(ingress: Ingress, max_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_bytes)
    app.router.add_post("/v1/events", ingress.post_event)
    app.router.add_get("/v1/health", ingress.health)
    app.router.add_get("/v1/openapi.json", ingress.openapi)

    async def close_link(_: web.Application) -> None:
        await ingress.link.close()

    app.on_cleanup.append(close_link)
    return app


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.ingress_tls_cert is None:
        if settings.ingress_client_ca is not None:
            raise ConfigError("mTLS (KETENBUS_INGRESS_CLIENT_CA) needs KETENBUS_INGRESS_TLS_CERT and _KEY")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.ingress_tls_cert, settings.ingress_tls_key)
    if settings.ingress_client_ca is not None:
        context.load_verify_locations(settings.ingress_client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL  # a certificate or an API key identifies the partner
    return context


def create(settings: Settings, bootstrap: str) -> web.Application:
    from streams.lag import aiokafka_kwargs, client_kwargs

    keys = ApiKeys.from_settings(settings)
    mtls = settings.ingress_client_ca is not None
    if not len(keys) and not mtls:
        raise ConfigError("the ingress needs KETENBUS_API_KEYS, KETENBUS_API_KEYS_FILE or mTLS")
    link = BrokerLink(bootstrap, settings.ingress_send_timeout_s, aiokafka_kwargs(client_kwargs(settings)))
    limit = TokenBucket(settings.ingress_rate_per_s, settings.ingress_burst, time.monotonic)
    return build_app(Ingress(keys, link, mtls=mtls, limit=limit), settings.ingress_max_bytes)


def run(settings: Settings, stop: threading.Event, on_ready: Callable[[int], None] | None = None) -> None:
    """Serve until `stop` is set, in an event loop of its own (so any thread can run it);
    `on_ready` gets the bound port."""
    if settings.bootstrap is None:
        raise ConfigError("the ingress needs a bootstrap (KETENBUS_BOOTSTRAP)")
    asyncio.run(_serve(settings, settings.bootstrap, stop, on_ready))


async def _serve(
    settings: Settings, bootstrap: str, stop: threading.Event, on_ready: Callable[[int], None] | None
) -> None:
    app = create(settings, bootstrap)
    runner = web.AppRunner(app, access_log=None)  # an access log would carry case ids in URLs later
    await runner.setup()
    port = settings.ingress_port or 0
    site = web.TCPSite(runner, settings.ingress_addr, port, ssl_context=ssl_context(settings))
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    scheme = "https" if settings.ingress_tls_cert else "http"
    print(f"ingress: {scheme}://{settings.ingress_addr}:{bound}/v1/events", flush=True)
    if on_ready is not None:
        on_ready(bound)
    try:
        while not stop.is_set():
            await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()
