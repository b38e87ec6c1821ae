"""prometheus/rules/plugin.yml: promtool, unit tests that can fail, knobs vs docs/plugin.md, conventions
and runbook sections (docs/runbooks.md)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.binaries import PROMETHEUS_DIR, REPO, knob_sites, run_tool

RULES = PROMETHEUS_DIR / "rules" / "plugin.yml"
UNIT_TESTS = PROMETHEUS_DIR / "tests" / "plugin_test.yml"
KNOB_DOC = REPO / "docs" / "plugin.md"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md#"
ALERTS = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def _out(result) -> str:
    return f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"


def test_promtool_checks_the_rules_and_the_unit_tests_pass() -> None:
    check = run_tool("promtool", "check", "rules", str(RULES))
    assert check.returncode == 0 and "SUCCESS: 2 rules found" in check.stdout, _out(check)
    unit = run_tool("promtool", "test", "rules", "tests/plugin_test.yml", cwd=PROMETHEUS_DIR)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, _out(unit)


@pytest.mark.parametrize(("old", "new", "failing_group"), [
    (  # a missing model must fire at once
        "  # knob: rejection_window\n            > 0\n",
        "  # knob: rejection_window\n            > 1\n",
        "first rejection",
    ),
    (">= 5  # knob", ">= 4  # knob", "keep coming"),                          # other reasons: not at 4
    (">= 3  # knob", ">= 4  # knob", "repeated VRAM guard trips"),
    ('reason=~"value_not_in_list|invalid_prompt|missing_node_type"', 'reason=~"value_not_in_list"',
     "first rejection"),
    ('reason=~"value_not_in_list|invalid_prompt|missing_node_type"',
     'reason=~"value_not_in_list|invalid_prompt"', "missing_node_type"),
])
def test_unit_tests_fail_when_a_rule_changes(tmp_path: Path, old: str, new: str, failing_group: str) -> None:
    text = RULES.read_text()
    assert old in text
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / "plugin.yml").write_text(text.replace(old, new, 1))
    shutil.copy(UNIT_TESTS, tmp_path / "tests" / "plugin_test.yml")
    result = run_tool("promtool", "test", "rules", "tests/plugin_test.yml", cwd=tmp_path)
    assert result.returncode == 1, _out(result)
    assert failing_group in result.stderr + result.stdout, _out(result)


def _knob_table() -> dict[str, str]:
    section = KNOB_DOC.read_text().split("\n## Knobs\n", 1)[1].split("\n## ", 1)[0]
    rows = [re.match(r"^\|\s*`([a-z0-9_]+)`\s*\|\s*`([^`]+)`\s*\|", line) for line in section.splitlines()]
    return {row.group(1): row.group(2) for row in rows if row}


def test_every_knob_is_in_the_table_with_its_value() -> None:
    sites = knob_sites(RULES)
    table = _knob_table()
    assert {s.name for s in sites} == set(table)
    for site in sites:
        assert site.value == table[site.name], f"{site.name}: rules {site.value}, docs {table[site.name]}"


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a["alert"])
def test_alert_conventions_and_runbook(alert: dict) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    notes = alert["annotations"]
    assert set(notes) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert "{{" not in notes["summary"] and notes["summary"].endswith(".")
    assert "$labels.comfyui" in notes["description"]
    assert notes["runbook_url"] == RUNBOOK_BASE + alert["alert"].lower()
    assert notes["dashboard_url"].startswith("http://localhost:3000/d/comfyui-overview/")
    assert not re.search(r"\bby\s*\(", alert["expr"]), "aggregate with `without` to keep target labels"
    sections = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.M)
    body = next((s for s in sections if s.split("\n", 1)[0].strip() == alert["alert"]), None)
    assert body is not None, f"docs/runbooks.md has no '## {alert['alert']}'"
    for part in ("**Meaning.**", "**First checks.**", "**Fixes.**"):
        assert part in body


def test_every_alert_fires_in_a_unit_test() -> None:
    fired = {case["alertname"] for t in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
             for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert fired == {a["alert"] for a in ALERTS} == {"ComfyUIPromptRejections", "ComfyUIVRAMGuardTrips"}
