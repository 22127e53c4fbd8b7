"""Seed corpora: one valid input per lifecycle step, so mutations start deep in the parsers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas import default_codec
from schemas.envelope import source_for
from tests.samples import every_step, producer_of, sample


def write(root: Path) -> None:
    codec_dir, ingress_dir = root / "codec", root / "ingress"
    codec_dir.mkdir(parents=True, exist_ok=True)
    ingress_dir.mkdir(parents=True, exist_ok=True)
    for i, (family, step) in enumerate(every_step()):
        datum = sample(family, step, f"Z-SEED-{i}")
        (codec_dir / f"{family}-{step}.bin").write_bytes(default_codec().encode(family, datum))
        event = {
            "specversion": "1.0",
            "id": f"seed-{i}",
            "source": source_for(producer_of(family, step)),
            "type": f"nl.ketenbus.{family.lower()}.{step}",
            "time": "2026-03-02T09:00:00Z",
            "subject": datum["zaak_ref"],
            "data": datum,
        }
        (ingress_dir / f"{family}-{step}.json").write_text(json.dumps(event, default=str), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
