"""The OpenAPI 3.1 document of the HTTP ingress, built from the same models it validates with.

`ketenbus openapi` prints it; the ingress serves it at `/v1/openapi.json`; `docs/openapi.json`
is a copy a test keeps current.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.models import model_for
from schemas.registry import PARTNER_FAMILIES, family

REF = "#/components/schemas/{model}"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _cloudevent(family_name: str) -> dict[str, Any]:
    fam = family(family_name)
    return {
        "type": "object",
        "title": f"CloudEvent: {family_name}",
        "description": f"A {family_name} event in structured mode. {fam.schema.get('doc', '')}".strip(),
        "required": ["specversion", "id", "source", "type", "time", "subject", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {
                "type": "string",
                "maxLength": 200,
                "description": "Unique per partner; a retry sends the same id.",
            },
            "source": {
                "type": "string",
                "pattern": "^urn:nld:ketenbus:partner:[a-z-]+$",
                "description": "The authenticated partner, as urn:nld:ketenbus:partner:<partner>.",
            },
            "type": {"enum": list(fam.ce_types), "description": "nl.ketenbus.<family>.<stap>"},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "description": "The case reference; equals data.zaak_ref."},
            "datacontenttype": {"const": "application/json"},
            "data": {"$ref": REF.format(model=family_name)},
        },
    }


@cache
def document() -> dict[str, Any]:
    mode: Literal["validation"] = "validation"
    models: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (model_for(name), mode) for name in PARTNER_FAMILIES
    ]
    _, schemas = models_json_schema(models, ref_template=REF)
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    events = {f"{name}Event": _cloudevent(name) for name in PARTNER_FAMILIES}
    components.update(events)
    components["CloudEvent"] = {"oneOf": [{"$ref": REF.format(model=n)} for n in events]}
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details. Never repeats a submitted value.",
        "required": ["title", "status", "reason"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "reason": {"type": "string", "description": "Stable reason code, e.g. schema.invalid."},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string", "description": "e.g. data.persoon_refs.0.rol"},
                        "message": {"type": "string"},
                        "code": {"type": "string"},
                    },
                },
            },
        },
    }
    components["Accepted"] = {
        "type": "object",
        "required": ["id", "status"],
        "properties": {"id": {"type": "string"}, "status": {"enum": ["accepted", "duplicate"]}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ketenbus HTTP ingress",
            "version": "1",
            "description": (
                "Partners publish case events of the Dutch chain approach against domestic violence "
                "and child abuse as CloudEvents. 202 is given only after the broker stored the event."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "publishEvent",
                    "summary": "Publish one event to the partner's inbox",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/cloudevents+json": {
                                "schema": {"$ref": REF.format(model="CloudEvent")}
                            },
                            "application/json": {"schema": {"$ref": REF.format(model="CloudEvent")}},
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Stored: the broker acknowledged the write.",
                            "content": {
                                "application/json": {"schema": {"$ref": REF.format(model="Accepted")}}
                            },
                        },
                        "200": {
                            "description": "This partner's id was accepted before; not written again.",
                            "content": {
                                "application/json": {"schema": {"$ref": REF.format(model="Accepted")}}
                            },
                        },
                        "400": _problem("Not JSON, not a CloudEvent, or invalid data (field-level errors)."),
                        "401": _problem("No API key, or an unknown one."),
                        "403": _problem(
                            "source is not the authenticated partner, or the type is not its to produce."
                        ),
                        "413": _problem("Body larger than the configured limit."),
                        "415": _problem("Content type is not JSON."),
                        "429": _problem("This partner posts faster than its rate limit (Retry-After)."),
                        "503": _problem(
                            "The broker did not acknowledge; retry with the same id (Retry-After)."
                        ),
                    },
                }
            },
            "/v1/health": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": {"description": "The broker is reachable."},
                        "503": {"description": "The broker is not reachable."},
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
