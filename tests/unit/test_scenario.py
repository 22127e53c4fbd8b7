"""Scenario files: every mistake is reported with file and line before anything runs; offsets
and synthetic data behave as documented."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from connectors.scenario import DataBuilder, Offset, ScenarioError, load, load_all
from streams.settings import REPO_ROOT

GOOD = """\
name: good
start: 2026-04-01T10:00:00+02:00
steps:
  - at: 0m
    partner: gemeente
    type: Huisverbod.opgelegd
    data:
      persoon_refs: [{persoon: P1, rol: slachtoffer}, {persoon: P2, rol: pleger}]
    expect:
      - delivered: {to: politie, type: Huisverbod.opgelegd, within: 1m, fields: [einddatum]}
  - at: 9d
    partner: gemeente
    type: Huisverbod.verlengd
    data: {einddatum: 28d}
expect:
  - escalated: {timer: huisverbod-contactadres, to: [politie], by: 24h}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load(write(tmp_path, text))
    return info.value.problems


def test_good_scenario_loads(tmp_path: Path) -> None:
    sc = load(write(tmp_path, GOOD))
    assert [s.type for s in sc.steps] == ["Huisverbod.opgelegd", "Huisverbod.verlengd"]
    assert [e.kind for e in sc.expectations] == ["delivered", "escalated"]
    assert sc.expectations[0].step == 0 and sc.expectations[1].step is None


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("partner: gemeente", "partner: burgemeester", 5, "unknown partner 'burgemeester'"),
        ("type: Huisverbod.opgelegd", "type: Huisverbod.opgelegt", 6, "unknown type 'Huisverbod.opgelegt'"),
        ("{einddatum: 28d}", "{einddatum: 28d, duur: 3}", 14, "unknown field 'duur' of Huisverbod"),
        ("fields: [einddatum]", "fields: [eind]", 10, "unknown field 'eind' of Huisverbod in `fields`"),
        ("- escalated:", "- geescaleerd:", 16, "unknown expectation 'geescaleerd'"),
        ("timer: huisverbod-contactadres", "timer: contactadres", 16, "unknown timer 'contactadres'"),
        ("to: [politie], by: 24h", "to: [politie], by: 24u", 16, "'24u' is no time offset"),
        (
            "    partner: gemeente\n    type: Huisverbod.verlengd",
            "    partner: politie\n    type: Huisverbod.verlengd",
            12,
            "politie may not produce Huisverbod.verlengd",
        ),
        (
            "{einddatum: 28d}",
            "{pleger_meerderjarig: misschien}",
            14,
            "data of Huisverbod.verlengd is invalid",
        ),
        ("start: 2026-04-01T10:00:00+02:00", "start: gisteren", 2, "start 'gisteren' is no ISO time"),
        ("  - at: 9d", "  - at: 9d\n    wanneer: nu", 12, "unknown key 'wanneer' in step 2"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    path = tmp_path / "s.yaml"
    assert any(p.startswith(f"{path}:{line}: ") and message in p for p in found), found


def test_unknown_reason_and_bad_kind(tmp_path: Path) -> None:
    text = GOOD + "  - dead_lettered: {reason: codec.kapot}\n"
    text = text.replace("    data: {einddatum: 28d}\n", "    bad: half\n")
    found = problems(tmp_path, text)
    assert any(":14: unknown bad kind 'half'" in p for p in found), found
    assert any(":17: unknown reason 'codec.kapot'" in p for p in found), found


def test_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("partner: gemeente", "partner: x", 1), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(
        GOOD.replace("timer: huisverbod-contactadres", "timer: y"), encoding="utf-8"
    )
    with pytest.raises(ScenarioError) as info:
        load_all([tmp_path])
    assert [p.split(":")[0].rsplit("/", 1)[-1] for p in info.value.problems] == ["a.yaml", "b.yaml"]


def test_not_yaml_reports_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "name: x\nsteps: [\n  - at: 0m\n")
    assert found[0].startswith(f"{tmp_path / 's.yaml'}:")


def test_offsets_days_and_working_days_across_easter() -> None:
    start = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)  # Wednesday 1 April 2026, 10:00 local
    assert Offset.parse("1d 2h").after(start) == start + dt.timedelta(hours=26)
    # Good Friday counts (calendar: werkdag), Easter Monday does not: the 5th working day is 9 April
    assert Offset.parse("5wd").after(start) == dt.datetime(2026, 4, 9, 8, 0, tzinfo=dt.UTC)
    end = Offset.parse("5wd").after(start, deadline=True)
    assert end == dt.datetime(2026, 4, 9, 21, 59, 59, 999000, tzinfo=dt.UTC)
    # 29 March 2026 is the switch to summer time: a day is the same clock time
    sat = dt.datetime(2026, 3, 28, 9, 0, tzinfo=dt.UTC)  # 10:00 CET
    assert Offset.parse("1d").after(sat) == dt.datetime(2026, 3, 29, 8, 0, tzinfo=dt.UTC)  # 10:00 CEST


def test_data_builder_fills_synthetic_values_and_aliases(tmp_path: Path) -> None:
    sc = load(write(tmp_path, GOOD))
    assert sc.start is not None
    b = DataBuilder(sc, {"Z": "SC-Z-abc"}, sc.start)
    opgelegd = b.datum(sc.steps[0])
    assert opgelegd["zaak_ref"] == "SC-Z-abc" and opgelegd["tijdstip"] == sc.start
    assert opgelegd["einddatum"] - opgelegd["ingangsdatum"] == dt.timedelta(days=10)
    assert [p["persoon_ref"] for p in opgelegd["persoon_refs"]] == ["P-P1-abc", "P-P2-abc"]
    verlengd = b.datum(sc.steps[1])
    assert verlengd["ingangsdatum"] == opgelegd["ingangsdatum"]
    assert verlengd["einddatum"] == Offset.parse("28d").after(sc.start)


def test_library_loads() -> None:
    assert len(load_all([REPO_ROOT / "scenarios"])) >= 12
