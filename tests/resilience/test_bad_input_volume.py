"""100,000 bad inbox records — random bytes, mutated Avro, wrong headers, oversized values —
mixed with valid events, on a bus of its own. The router keeps running; every bad record is in
the DLQ with the reason the pure router gives it; every valid event reaches exactly the
outboxes the policy allows."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from schemas.codec import REASONS as CODEC_REASONS
from schemas.envelope import Envelope, header
from streams import topics
from streams.router import InRecord
from streams.validation import REASONS as SEMANTIC_REASONS
from tests.bus import IsolatedBus, Tap, isolated_bus
from tests.resilience.oracle import delivered, oracle, valid_events
from tests.samples import MARKER

pytestmark = pytest.mark.integration

# `make soak` raises these through the environment.
BAD = int(os.environ.get("KETENBUS_SOAK_BAD", 100_000))
VALID = int(os.environ.get("KETENBUS_SOAK_VALID", 2_000))
OVERSIZED = 3
SEED = 20261122


def mutate(rng: random.Random, rec: InRecord, i: int) -> InRecord:
    """One bad variant of a valid record, keyed uniquely so its DLQ record can be found."""
    key = f"BAD-{i}".encode()
    value = rec.value or b""
    headers = list(rec.headers)
    kind = i % 8
    if kind == 0:  # random bytes
        value = rng.randbytes(rng.randrange(0, 300))
    elif kind == 1:  # flipped bytes in the body
        body = bytearray(value)
        for _ in range(rng.randrange(1, 4)):
            body[rng.randrange(10, len(body))] ^= 1 << rng.randrange(8)
        value = bytes(body)
    elif kind == 2:  # truncated
        value = value[: rng.randrange(0, len(value))]
    elif kind == 3:  # trailing garbage
        value = value + rng.randbytes(rng.randrange(1, 20))
    elif kind == 4:  # a header dropped
        drop = rng.choice(["ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "ce_specversion"])
        headers = [(k, v) for k, v in headers if k != drop]
    elif kind == 5:  # a header garbled
        name = rng.choice(["ce_type", "ce_time", "ce_source", "ce_specversion", "content-type"])
        headers = [(k, rng.randbytes(8) if k == name else v) for k, v in headers]
    elif kind == 6:  # the fingerprint of another schema
        value = value[:2] + rng.randbytes(8) + value[10:]
    else:  # written to another partner's inbox
        others = [t for t in topics.INBOXES if t != rec.topic and t != topics.inbox("ketenbus")]
        return InRecord(rng.choice(others), 0, i, key, value, fresh_id(headers, i))
    return InRecord(rec.topic, 0, i, key, value, fresh_id(headers, i))


def fresh_id(headers: list[tuple[str, bytes]], i: int) -> list[tuple[str, bytes]]:
    """Every bad record its own ce_id: a shared one would make it a duplicate instead."""
    return [(k, f"bad-{i}".encode() if k == "ce_id" else v) for k, v in headers]


@pytest.fixture
def bus(tmp_path) -> Iterator[IsolatedBus]:
    with isolated_bus(tmp_path / "workers.log", "t-badvolume") as b:
        yield b


def test_bad_input_at_volume(bus: IsolatedBus, tmp_path) -> None:
    rng = random.Random(SEED)
    valid = valid_events(VALID, rng, "OK")
    bad = [mutate(rng, valid[rng.randrange(VALID)], i) for i in range(BAD)]
    # Values larger than any event, up to the broker's message limit.
    big = [
        InRecord(topics.inbox("politie"), 0, 0, f"BIG-{i}".encode(), rng.randbytes(900_000), valid[0].headers)
        for i in range(OVERSIZED)
    ]
    big = [
        InRecord(r.topic, 0, 0, r.key, r.value, fresh_id(list(r.headers), BAD + i)) for i, r in enumerate(big)
    ]
    mixed: list[InRecord] = bad + big
    for v in valid:  # valid events spread through the bad ones
        mixed.insert(rng.randrange(len(mixed) + 1), v)
    expected = oracle(mixed)
    assert len(expected.dead) >= BAD * 0.9, "the mutations must mostly be bad"

    started = time.monotonic()
    for rec in mixed:
        bus.publisher.raw(rec.topic, rec.key, rec.value, rec.headers, wait=False)
    bus.publisher.flush()
    sent_s = time.monotonic() - started

    dlq = Tap(bus.broker.bootstrap, watched=(topics.DLQ,))
    try:
        dlq.wait(
            lambda t: len(t.records()) >= len(expected.dead), 600 + BAD / 200, "every bad record in the DLQ"
        )
        routed_s = time.monotonic() - started
        reasons = {s.key: header(s.headers, "ketenbus_reden") for s in dlq.records()}
    finally:
        dlq.close()
    assert bus.router.proc is not None and bus.router.proc.poll() is None, "the router stopped"

    # Every bad record dead-lettered, with the reason the pure router gives it.
    missing = [k for k in expected.dead if k not in reasons]
    assert not missing, f"{len(missing)} bad records not in the DLQ, e.g. {missing[:3]}"
    wrong = [(k, r, reasons[k]) for k, r in expected.dead.items() if reasons[k] != r]
    assert not wrong, f"{len(wrong)} with another reason, e.g. {wrong[:3]}"
    assert set(reasons.values()) <= {*CODEC_REASONS, *SEMANTIC_REASONS} | {
        r for r in reasons.values() if r and r.startswith("envelope.")
    }

    # Every valid event reached exactly the outboxes the policy allows, once.
    outboxes = Tap(bus.broker.bootstrap, watched=topics.OUTBOXES)
    try:
        want = sum(len(t) for t in expected.deliveries.values())
        outboxes.wait(lambda t: len(t.records()) >= want, 300, "every valid delivery")
        outboxes.sync()
        got = delivered(outboxes.records())
    finally:
        outboxes.close()
    wrong_deliveries = [
        (ce_id, sorted(allowed), dict(got.get(ce_id, {})))
        for ce_id, allowed in expected.deliveries.items()
        if got.get(ce_id, Counter()) != Counter(dict.fromkeys(allowed, 1))
    ]
    assert not wrong_deliveries, (
        f"{len(wrong_deliveries)} events not delivered as allowed: {wrong_deliveries[:3]}"
    )
    assert set(got) <= set(expected.deliveries), "an outbox holds an event that should not be there"

    # The DLQ keeps the bad bytes for an operator; the logs carry none of them.
    assert MARKER not in (tmp_path / "workers.log").read_text(errors="replace")

    by_reason = Counter(expected.dead.values())
    print(
        f"\nbad inputs: {len(expected.dead)} dead-lettered of {BAD + OVERSIZED} tried; valid: "
        f"{len(expected.deliveries)} delivered to {want} outboxes; lost: 0; sent in {sent_s:.1f} s, "
        f"all routed after {routed_s:.1f} s; reasons: {dict(by_reason.most_common())}"
    )


def test_mutations_are_deterministic() -> None:
    """The same seed gives the same inputs, so a failure can be replayed."""
    a, b = random.Random(SEED), random.Random(SEED)
    va, vb = valid_events(5, a, "OK"), valid_events(5, b, "OK")
    ma = [mutate(a, va[0], i) for i in range(50)]
    mb = [mutate(b, vb[0], i) for i in range(50)]
    assert [(m.topic, m.key, m.value) for m in ma] == [(m.topic, m.key, m.value) for m in mb]
    assert Envelope.from_headers(va[0].headers).subject == "OK-0"
