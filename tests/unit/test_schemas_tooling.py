"""Schema tooling: classification, BACKWARD compatibility against the released versions, the
generated pydantic models, and the AsyncAPI document."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import families
from schemas.compat import PACKAGE_DIR, RELEASED_DIR, check
from schemas.models import model_for, to_avro
from schemas.registry import CLASSIFICATIONS, PARTNERS
from streams import topics
from streams.asyncapi import document
from streams.cli import main


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    target.mkdir()
    for p in PACKAGE_DIR.glob("*.avsc"):
        shutil.copy(p, target / p.name)
    return target


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_shipped_schemas_pass(capsys) -> None:
    assert check() == []
    assert main(["schemas", "check"]) == 0
    assert "BACKWARD compatible" in capsys.readouterr().out


def test_every_field_is_classified_and_documented() -> None:
    for fam in families().values():
        for f in fam.fields:
            assert f.classification in CLASSIFICATIONS, (fam.name, f.name)
            assert f.doc, (fam.name, f.name)


INCOMPATIBLE = {
    "new field without default": lambda d: d["fields"].append(
        {"name": "nieuw", "type": "string", "doc": "x", "ketenbus.class": "none"}
    ),
    "field type changed": lambda d: next(f for f in d["fields"] if f["name"] == "monitoring_maanden").update(
        type=["null", "string"]
    ),
    "enum symbol removed": lambda d: d["fields"][0]["type"]["symbols"].remove("afgesloten"),
}


@pytest.mark.parametrize("name", INCOMPATIBLE)
def test_an_incompatible_change_is_rejected(schema_copy: Path, capsys, name: str) -> None:
    edit(schema_copy / "melding.avsc", INCOMPATIBLE[name])
    code = main(["schemas", "check", "--dir", str(schema_copy), "--released", str(RELEASED_DIR)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Melding" in err


def test_a_compatible_change_passes(schema_copy: Path, capsys) -> None:
    edit(
        schema_copy / "melding.avsc",
        lambda d: d["fields"].append(
            {
                "name": "nieuw",
                "type": ["null", "string"],
                "default": None,
                "doc": "x",
                "ketenbus.class": "none",
            }
        ),
    )
    assert main(["schemas", "check", "--dir", str(schema_copy), "--released", str(RELEASED_DIR)]) == 0


def test_an_unclassified_field_is_rejected(schema_copy: Path, capsys) -> None:
    edit(schema_copy / "zsm.avsc", lambda d: d["fields"][-1].pop("ketenbus.class"))
    assert main(["schemas", "check", "--dir", str(schema_copy)]) == 1
    assert "ketenbus.class" in capsys.readouterr().err


def test_an_always_released_field_must_be_unclassified(schema_copy: Path, capsys) -> None:
    edit(schema_copy / "huisverbod.avsc", lambda d: d["fields"][1].update({"ketenbus.class": "identifying"}))
    assert main(["schemas", "check", "--dir", str(schema_copy)]) == 1
    assert "always released" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(families()))
def test_model_mirrors_schema(name: str) -> None:
    """The model is generated from the .avsc; this checks the generator kept every field,
    its optionality and its default."""
    fam = families()[name]
    model = model_for(name)
    assert list(model.model_fields) == list(fam.field_names)
    for f in fam.schema["fields"]:
        info = model.model_fields[f["name"]]
        assert info.is_required() == ("default" not in f), f["name"]
        if "default" in f and not isinstance(f["default"], list):
            assert info.default == f["default"], f["name"]
        nullable = isinstance(f["type"], list) and "null" in f["type"]
        assert (type(None) in typing.get_args(info.annotation)) == nullable, f["name"]


def test_model_rejects_unknown_fields_and_bad_values() -> None:
    melding = model_for("Melding")
    with pytest.raises(ValidationError):
        melding(stap="ontvangen", zaak_ref="Z", tijdstip="2026-01-01T00:00:00Z", bsn="123")
    with pytest.raises(ValidationError):
        melding(stap="verzonnen", zaak_ref="Z", tijdstip="2026-01-01T00:00:00Z")
    ok = melding(stap="ontvangen", zaak_ref="Z", tijdstip="2026-01-01T00:00:00Z")
    assert to_avro(ok)["acuut"] is False


def test_asyncapi_has_an_inbox_and_outbox_channel_per_partner(capsys) -> None:
    doc = document()
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    for p in PARTNERS:
        assert topics.inbox(p) in addresses and topics.outbox(p) in addresses
        assert doc["operations"][f"{p}-publish"]["action"] == "send"
        assert doc["operations"][f"{p}-receive"]["action"] == "receive"
    for name, fam in families().items():
        payload = doc["components"]["schemas"][name]
        assert payload["schemaFormat"].startswith("application/vnd.apache.avro")
        assert payload["schema"]["fields"] == fam.schema["fields"]
    # every message reference resolves
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            assert ref["$ref"].rsplit("/", 1)[1] in doc["components"]["messages"]
    assert main(["asyncapi"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "ketenbus"


def test_a_partner_inbox_channel_lists_only_the_families_it_produces() -> None:
    doc = document()
    assert all(
        k.startswith("slachtofferdevicealert.") for k in doc["channels"]["in-alarmcentrale"]["messages"]
    )
    assert not any(k.startswith("huisverbod.") for k in doc["channels"]["in-om"]["messages"])
    assert "huisverbod.opgelegd" in doc["channels"]["in-gemeente"]["messages"]
