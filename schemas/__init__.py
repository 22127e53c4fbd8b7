"""The ketenbus contract: Avro schemas of the event families, the single-object codec, the
CloudEvents envelope and pydantic models generated from the schemas."""

from schemas.codec import Codec, CodecError, decode, default_codec, encode
from schemas.envelope import Envelope, EnvelopeError
from schemas.registry import PARTNERS, Family, all_ce_types, families, family, resolve_type

__all__ = [
    "PARTNERS",
    "Codec",
    "CodecError",
    "Envelope",
    "EnvelopeError",
    "Family",
    "all_ce_types",
    "decode",
    "default_codec",
    "encode",
    "families",
    "family",
    "resolve_type",
]
