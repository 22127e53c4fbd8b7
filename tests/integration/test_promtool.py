"""The alert rules, checked and unit-tested by Prometheus' own `promtool` (`make tools` installs
it from Debian's `prometheus` package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bus import require_tool

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool")


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_rules_pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found and int(found.group(1)) == len(alerts()) >= 5


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULES_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == firing, f"no firing case for {sorted(names - firing)}"
    assert names == silent, f"no silent case for {sorted(names - silent)}"


@pytest.mark.parametrize(
    ("change", "was", "becomes"),
    [
        ("worker down without waiting", "for: 1m", "for: 0m"),
        ("device alarm rule that misses the first escalation", "offset 5m", "offset 30m"),
        ("lag threshold", "> 1000", "> 2000"),
    ],
)
def test_the_unit_tests_catch_a_changed_rule(
    promtool: str, tmp_path: Path, change: str, was: str, becomes: str
) -> None:
    text = RULES.read_text()
    assert was in text, change
    (tmp_path / "rules.yml").write_text(text.replace(was, becomes))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yml")
    result = run(promtool, "test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0, f"a {change} passed the rule tests"


def test_prometheus_rule_manifest_holds_valid_rules(promtool: str, tmp_path: Path) -> None:
    (manifest,) = [
        d for d in yaml.safe_load_all((REPO / "deploy/k8s/prometheus-rule.yaml").read_text()) if d is not None
    ]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}))
    result = run(promtool, "check", "rules", rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
