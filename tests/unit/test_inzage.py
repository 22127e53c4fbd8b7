"""The inzage answer's formats on fixed rows: aligned columns a person can read, JSON a
privacy officer's tooling can parse, and a clear line when nothing was disclosed."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from connectors.inzage import Row, render_json, render_table

REF = "P-7f3a"
ROWS = [
    Row(
        persoon_ref=REF,
        verstrekking_id="v-1",
        event_id="e-1",
        event_type="nl.ketenbus.melding.ontvangen",
        zaak_ref="Z-1",
        ontvanger="veilig_thuis",
        velden=("persoon_refs", "signalen"),
        regel="melding-vt",
        grondslag="Wmo 2015 art. 5.2.6",
        doel="risicotaxatie",
        policy_versie="2026.1",
        tijdstip=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC),
    ),
    Row(
        persoon_ref=REF,
        verstrekking_id="v-2",
        event_id="e-2",
        event_type="nl.ketenbus.huisverbod.opgelegd",
        zaak_ref="Z-1",
        ontvanger="om",
        velden=("einddatum",),
        regel="hv-om",
        grondslag="Wth art. 2; AVG art. 6(1)(e)",
        doel="strafrechtelijke afdoening",
        policy_versie="2026.1",
        tijdstip=dt.datetime(2026, 7, 1, 12, 30, 5, tzinfo=dt.UTC),
    ),
]


def test_table_has_a_header_line_and_aligned_columns() -> None:
    text = render_table(ROWS, REF)
    assert text == (
        "inzage P-7f3a: 2 disclosure(s) registered "
        "(tijdstip in Europe/Amsterdam; velden = the fields released)\n"
        "\n"
        "tijdstip                   ontvanger     event_type                       velden                  "
        "grondslag                     doel\n"
        "-------------------------  ------------  -------------------------------  ----------------------  "
        "----------------------------  --------------------------\n"
        "2026-03-02 10:00:00+01:00  veilig_thuis  nl.ketenbus.melding.ontvangen    persoon_refs, signalen  "
        "Wmo 2015 art. 5.2.6           risicotaxatie\n"
        "2026-07-01 14:30:05+02:00  om            nl.ketenbus.huisverbod.opgelegd  einddatum               "
        "Wth art. 2; AVG art. 6(1)(e)  strafrechtelijke afdoening\n"
    )


def test_every_column_starts_where_its_header_starts() -> None:
    lines = render_table(ROWS, REF).splitlines()[2:]
    header, rule, *body = lines
    starts = [i for i in range(len(rule)) if rule[i] == "-" and (i == 0 or rule[i - 1] == " ")]
    assert len(starts) == 6
    for line in [header, *body]:
        for s in starts[1:]:
            assert line[s - 2 : s] == "  " and line[s] != " ", line


def test_json_holds_every_row_in_order() -> None:
    doc = json.loads(render_json(ROWS, REF))
    assert doc["persoon_ref"] == REF and doc["count"] == 2
    first, second = doc["verstrekkingen"]
    assert first == {
        "tijdstip": "2026-03-02T09:00:00.000Z",
        "ontvanger": "veilig_thuis",
        "event_type": "nl.ketenbus.melding.ontvangen",
        "event_id": "e-1",
        "zaak_ref": "Z-1",
        "velden": ["persoon_refs", "signalen"],
        "grondslag": "Wmo 2015 art. 5.2.6",
        "doel": "risicotaxatie",
        "regel": "melding-vt",
        "policy_versie": "2026.1",
        "verstrekking_id": "v-1",
    }
    assert second["event_id"] == "e-2" and second["velden"] == ["einddatum"]


@pytest.mark.parametrize("render", [render_table, render_json])
def test_nothing_registered(render) -> None:
    text = render([], REF)
    if render is render_json:
        assert json.loads(text) == {"persoon_ref": REF, "count": 0, "verstrekkingen": []}
    else:
        assert text == f"inzage {REF}: no disclosures registered for {REF}\n"
