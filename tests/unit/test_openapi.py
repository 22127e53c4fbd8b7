"""The ingress's OpenAPI document is valid OpenAPI 3.1, and docs/openapi.json is current."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from connectors.openapi import document
from schemas.registry import PARTNER_FAMILIES

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_document_is_valid_openapi() -> None:
    validate(document())


def test_every_partner_family_has_a_request_schema() -> None:
    schemas = document()["components"]["schemas"]
    assert {f"{name}Event" for name in PARTNER_FAMILIES} <= set(schemas)
    assert len(schemas["CloudEvent"]["oneOf"]) == len(PARTNER_FAMILIES)


def test_docs_copy_is_current() -> None:
    assert json.loads(DOC.read_text(encoding="utf-8")) == document(), (
        "run: ketenbus openapi > docs/openapi.json"
    )


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    from connectors.ingress import TokenBucket

    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take("politie") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("politie") == 0.5  # one token takes half a second at 2/s
    assert bucket.take("om") == 0.0  # another partner has its own bucket
    now[0] = 0.5
    assert bucket.take("politie") == 0.0
    now[0] = 100.0
    assert [bucket.take("politie") for _ in range(4)][-1] > 0  # never more than the burst saved up
