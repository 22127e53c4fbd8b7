"""Scenario replay end to end: the library passes through the CLI, every kind of expectation
can fail (with expected and observed in the message), a 28-day huisverbod runs in under 5 s
once the bus is up, and a recording of a small demo replays with identical outcomes."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from connectors.demo import simulate
from connectors.harness import running_bus
from connectors.record import record, replay_recording
from connectors.replay import run_all, run_scenario
from connectors.scenario import load, load_all
from streams.broker import EmbeddedBroker
from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration

SCENARIOS = REPO_ROOT / "scenarios"

# Built to fail: each expectation names something that does not happen.
FAILING = """\
name: built-to-fail
start: 2026-03-02T10:00:00+01:00
steps:
  - at: 0m
    partner: gemeente
    type: Huisverbod.opgelegd
    expect:
      - delivered: {to: om, type: Huisverbod.opgelegd}
      - delivered: {to: politie, type: Huisverbod.opgelegd, absent: [einddatum]}
      - not_delivered: {to: politie, type: Huisverbod.opgelegd}
      - escalated: {timer: huisverbod-contactadres, by: 1h}
      - escalated: {timer: zsm-beslissing}
      - not_escalated: {timer: huisverbod-contactadres}
      - dead_lettered: {reason: codec.empty}
  - at: 2d
    partner: gemeente
    type: Huisverbod.beeindigd
"""


def test_library_has_every_scenario_of_domain_md() -> None:
    scenarios = load_all([SCENARIOS])
    assert len(scenarios) >= 12
    for sc in scenarios:
        text = sc.path.read_text(encoding="utf-8")
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        assert "Bron:" in comments or "bron" in comments.lower(), f"{sc.path} cites no source"
    kinds = {e.kind for sc in scenarios for e in sc.expectations}
    assert kinds == {"delivered", "not_delivered", "escalated", "not_escalated", "dead_lettered"}


def test_cli_replays_the_library(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "connectors.cli",
            "replay",
            str(SCENARIOS),
            "--shared",
            "--junit",
            str(report),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    suite = ET.parse(report).getroot()
    assert int(suite.get("tests", "0")) >= 60
    assert suite.get("failures") == "0" and suite.get("errors") == "0"


def test_every_kind_of_expectation_can_fail(tmp_path: Path) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(FAILING, encoding="utf-8")
    [outcome] = run_all([load(path)], shared=True, echo=lambda _: None)
    assert not outcome.passed
    by_line = {v.expectation.line: v for v in outcome.verdicts}
    assert all(not v.passed for v in outcome.verdicts), [v.render() for v in outcome.verdicts if v.passed]
    for v in outcome.verdicts:
        assert "expected:" in v.message and "observed:" in v.message, v.message
        assert v.expectation.kind in v.render()
    assert "om received nothing" in by_line[8].message
    assert "fields ['contactadres', 'einddatum'" in by_line[9].message  # what politie did get
    assert "Huisverbod.opgelegd at" in by_line[10].message
    assert "huisverbod-contactadres/termijn_verlopen at 2026-03-03 10:00:00 CET" in by_line[11].message
    assert "observed: none" in by_line[12].message
    assert "observed: huisverbod-contactadres/termijn_verlopen" in by_line[13].message
    assert "observed: none" in by_line[14].message


def test_cli_exit_code_and_file_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(FAILING.replace("partner: gemeente", "partner: burgemeester", 1), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "replay", str(bad)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{bad}:5: unknown partner 'burgemeester'" in proc.stderr


def test_28_day_huisverbod_under_5_seconds_on_its_own_bus() -> None:
    sc = load(SCENARIOS / "huisverbod-verlengd-28-dagen.yaml")
    assert sc.start is not None
    import datetime as dt

    with running_bus(None, ready_at=sc.start - dt.timedelta(minutes=1)) as bus:
        began = time.monotonic()
        outcome = run_scenario(bus, sc, sc.start)
        wall = time.monotonic() - began
    print(f"28-day huisverbod scenario: {wall:.2f} s wall after bus startup")
    assert outcome.passed, outcome.render()
    assert wall < 5.0


def test_recording_of_a_demo_replays_identically(tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    with EmbeddedBroker() as broker:
        summary = simulate(cases=4, seed=5, bootstrap=broker.bootstrap, quiet=True)
        with out.open("w", encoding="utf-8") as f:
            assert record(broker.bootstrap, f, seconds=0) > 0
    assert sum(summary.escalations.values()) > 0
    comparison = replay_recording(out)
    assert comparison.identical, comparison.render()
    assert comparison.deliveries_expected == sum(summary.received.values())
    assert comparison.escalations_expected == sum(summary.escalations.values())
    assert comparison.escalations_observed == comparison.escalations_expected
