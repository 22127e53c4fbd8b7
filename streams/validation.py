"""Checks an inbox record must pass before the bus accepts it, each failing with a reason code.

Pure functions over the envelope and the decoded record. The order matters: envelope first (who
says they sent it), then the bytes, then whether that partner may say this, then the hard rules
of the law (a huisverbod lasts at most 10 days, extended to at most 28, only on adults).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.registry import Family, resolve_type

HUISVERBOD_MAX = dt.timedelta(days=10)
HUISVERBOD_MAX_VERLENGD = dt.timedelta(days=28)

SOURCE_MISMATCH = "envelope.source_mismatch"
TYPE_MISMATCH = "envelope.type_mismatch"
CASE_MISMATCH = "envelope.subject_mismatch"
PRODUCER_NOT_ALLOWED = "semantiek.producer_not_allowed"
FIELD_MISSING = "semantiek.field_missing"
HUISVERBOD_TOO_LONG = "semantiek.huisverbod_too_long"
HUISVERBOD_MINOR = "semantiek.huisverbod_minor"
HUISVERBOD_ENDS_BEFORE_START = "semantiek.huisverbod_ends_before_start"
DUPLICATE = "duplicate.ce_id"

REASONS = (
    SOURCE_MISMATCH,
    TYPE_MISMATCH,
    CASE_MISMATCH,
    PRODUCER_NOT_ALLOWED,
    FIELD_MISSING,
    HUISVERBOD_TOO_LONG,
    HUISVERBOD_MINOR,
    HUISVERBOD_ENDS_BEFORE_START,
    DUPLICATE,
)


@dataclass(frozen=True)
class Rejection(Exception):
    reason: str
    detail: str


def check_event(
    inbox_partner: str,
    source_partner: str,
    ce_type: str,
    subject: str,
    fam: Family,
    record: Mapping[str, Any],
) -> None:
    """Raise Rejection when the event may not enter the bus."""
    if source_partner != inbox_partner:
        raise Rejection(
            SOURCE_MISMATCH, f"source names {source_partner}, written to the inbox of {inbox_partner}"
        )
    type_fam, step = resolve_type(ce_type)
    if type_fam.name != fam.name or record.get("stap", step) != step:
        raise Rejection(TYPE_MISMATCH, f"ce_type is {type_fam.name}.{step}, body is {fam.name}")
    if record.get("zaak_ref") != subject:
        raise Rejection(CASE_MISMATCH, "ce_subject differs from zaak_ref")
    producers = fam.producers.get(step, frozenset())
    if source_partner not in producers:
        raise Rejection(PRODUCER_NOT_ALLOWED, f"{source_partner} may not produce {fam.name}.{step}")
    check = SEMANTIC_CHECKS.get((fam.name, step))
    if check is not None:
        check(record)


def _require(record: Mapping[str, Any], *names: str) -> None:
    missing = [n for n in names if record.get(n) is None]
    if missing:
        raise Rejection(FIELD_MISSING, f"missing {', '.join(missing)}")


def _huisverbod_duur(record: Mapping[str, Any], limit: dt.timedelta, what: str) -> None:
    _require(record, "ingangsdatum", "einddatum")
    start, end = record["ingangsdatum"], record["einddatum"]
    if end <= start:
        raise Rejection(HUISVERBOD_ENDS_BEFORE_START, "einddatum is not after ingangsdatum")
    if end - start > limit:
        days = (end - start) / dt.timedelta(days=1)
        raise Rejection(HUISVERBOD_TOO_LONG, f"{what}: {days:.1f} days, at most {limit.days} (Wth art. 2, 9)")


def _huisverbod_opgelegd(record: Mapping[str, Any]) -> None:
    if record.get("pleger_meerderjarig") is False:
        raise Rejection(HUISVERBOD_MINOR, "a huisverbod is imposed on adults only (Wth art. 2)")
    _huisverbod_duur(record, HUISVERBOD_MAX, "opgelegd")


def _huisverbod_verlengd(record: Mapping[str, Any]) -> None:
    _huisverbod_duur(record, HUISVERBOD_MAX_VERLENGD, "verlengd")


def _alarm(record: Mapping[str, Any]) -> None:
    _require(record, "soort")


def _advies(record: Mapping[str, Any]) -> None:
    _require(record, "advies_van", "advies")


def _beslissing(record: Mapping[str, Any]) -> None:
    _require(record, "beslissing")


SEMANTIC_CHECKS = {
    ("Huisverbod", "opgelegd"): _huisverbod_opgelegd,
    ("Huisverbod", "verlengd"): _huisverbod_verlengd,
    ("SlachtofferdeviceAlert", "alarm"): _alarm,
    ("Zsm", "advies"): _advies,
    ("Zsm", "beslissing"): _beslissing,
}
