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
