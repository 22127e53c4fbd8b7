"""The codec on arbitrary bytes: it decodes, or raises CodecError with a reason code; nothing
else. What it decodes, it encodes again to the same bytes."""

from __future__ import annotations

import sys

import atheris

# Only our own modules: instrumenting pydantic or aiohttp as well crashes the interpreter.
with atheris.instrument_imports(include=["schemas", "streams", "connectors"]):
    from schemas.codec import REASONS, CodecError, default_codec

CODEC = default_codec()


def one_input(data: bytes) -> None:
    try:
        _, record = CODEC.decode(data, resolve=False)
    except CodecError as exc:
        assert exc.reason in REASONS, exc.reason
        return
    again = CODEC.encode_with(CODEC.writer_of(data), record, validate=True)
    assert again == data, "decoded a record that does not encode to the same bytes"


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
