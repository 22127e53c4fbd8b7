"""The ingress's body parser on arbitrary bytes: it accepts, or rejects with a 4xx problem
document; it never raises anything else (which aiohttp would turn into a 500)."""

from __future__ import annotations

import sys

import atheris

# Only our own modules: instrumenting pydantic or aiohttp as well crashes the interpreter.
with atheris.instrument_imports(include=["schemas", "streams", "connectors"]):
    from connectors.ingress import Rejected, parse_body

PARTNERS = ("politie", "veilig-thuis", "om")


def one_input(data: bytes) -> None:
    partner = PARTNERS[data[0] % len(PARTNERS)] if data else "politie"
    try:
        parse_body(data, partner)
    except Rejected as r:
        assert 400 <= r.response.status < 500, r.response.status


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
