"""Configuration shared by the connectors: `partner=value` pairs from the environment."""

from __future__ import annotations

from schemas.registry import PARTNERS


class ConfigError(ValueError):
    """A connector's configuration is wrong. The message never quotes a value: it may be a key."""


def partner_pairs(text: str | None, what: str, error: type[ConfigError] = ConfigError) -> dict[str, str]:
    """`partner=value` pairs separated by commas or newlines (`#` starts a comment line); every
    partner a known one, and none twice."""
    pairs: dict[str, str] = {}
    for item in (text or "").replace("\n", ",").split(","):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        partner, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not partner or not value:
            raise error(f"{what}: expected partner=value pairs, got an entry without one")
        if partner not in PARTNERS:
            raise error(f"{what}: {partner!r} is not a partner (one of {', '.join(PARTNERS)})")
        if partner in pairs:
            raise error(f"{what}: {partner} is given twice")
        pairs[partner] = value
    return pairs
