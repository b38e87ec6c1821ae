"""Static checks of the alert rules: labels, annotations, runbook sections, and that the promtool
unit tests cover every alert (firing with exact labels, and the healthy fleet)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.binaries import PROMETHEUS_DIR, REPO

RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md#"
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ALERTS = {
    "ComfyUIExporterDown",
    "ComfyUIDown",
    "ComfyUIOutOfMemory",
    "ComfyUICudaError",
    "ComfyUIPromptFailures",
    "ComfyUIHighFailureRate",
    "ComfyUIPromptStuck",
    "ComfyUIQueueStalled",
    "ComfyUIQueueBacklog",
    "ComfyUILowVRAM",
    "ComfyUIVRAMExhaustionPredicted",
    "ComfyUIRestarted",
    "ComfyUIMonitoringDegraded",
}
OUR_RULES = PROMETHEUS_DIR / "rules" / "comfyui.yml"
OUR_TESTS = sorted(PROMETHEUS_DIR.glob("tests/comfyui_*_test.yml"))
HEALTHY = PROMETHEUS_DIR / "tests" / "comfyui_healthy_test.yml"


def _rules(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def _alerts(path: Path) -> list[dict]:
    return [rule for rule in _rules(path) if "alert" in rule]


ALL_ALERTS = [a for path in sorted(PROMETHEUS_DIR.glob("rules/*.yml")) for a in _alerts(path)]
OUR_ALERTS = _alerts(OUR_RULES)


def _slug(heading: str) -> str:
    """GitHub's heading anchor."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            current = _slug(line[3:])
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def _unit_tests() -> list[dict]:
    return [t for path in OUR_TESTS for t in yaml.safe_load(path.read_text())["tests"]]


def test_required_alerts_exist() -> None:
    assert {a["alert"] for a in OUR_ALERTS} >= REQUIRED_ALERTS


@pytest.mark.parametrize("alert", ALL_ALERTS, ids=lambda a: f"{a['alert']}-{a['labels'].get('severity')}")
def test_alert_labels_and_annotations(alert: dict) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url", "dashboard_url"}
    assert "{{" not in annotations["summary"], "summary must be a static sentence"
    if alert in OUR_ALERTS:
        assert annotations["summary"].endswith("."), "summary must be a sentence"
    assert "$labels." in annotations["description"], "description must be templated with labels"
    assert annotations["runbook_url"] == RUNBOOK_BASE + alert["alert"].lower()
    assert annotations["dashboard_url"].startswith("http")


@pytest.mark.parametrize("alert", sorted({a["alert"] for a in ALL_ALERTS}))
def test_runbook_section_for_every_alert(alert: str) -> None:
    """Every alert of every rule file links to an existing section; ours have the three parts (other
    rule files' owners keep their own section layout, which starts with a meaning too)."""
    sections = _runbook_sections()
    assert alert.lower() in sections, f"docs/runbooks.md has no '## {alert}' section"
    body = sections[alert.lower()]
    ours = alert in {a["alert"] for a in OUR_ALERTS}
    for part in ("**Meaning.**", "**First checks.**", "**Fixes.**") if ours else ("**Meaning.**",):
        assert part in body, f"runbook section {alert} lacks {part}"


def test_every_runbook_section_belongs_to_an_alert() -> None:
    """Rule alerts, and the event alerts the exporter pushes (their runbook_url annotations)."""
    from comfyui_exporter.notify.alerts import EVENT_ALERTNAMES, RUNBOOKS

    assert RUNBOOK_BASE == RUNBOOKS + "#"
    events = {name.lower() for name in EVENT_ALERTNAMES}
    assert set(_runbook_sections()) == {a["alert"].lower() for a in ALL_ALERTS} | events


def test_every_alert_and_severity_has_a_firing_unit_test() -> None:
    fired: set[tuple[str, str]] = set()
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            for exp in case.get("exp_alerts") or []:
                assert exp.get("exp_annotations"), f"{test['name']}: assert annotations too"
                fired.add((case["alertname"], exp["exp_labels"]["severity"]))
    wanted = {(a["alert"], a["labels"]["severity"]) for a in OUR_ALERTS}
    assert wanted - fired == set()


def test_unit_tests_only_name_existing_alerts() -> None:
    """An `exp_alerts: []` case with a typo in the alert name would pass vacuously."""
    names = {a["alert"] for a in OUR_ALERTS}
    used = {case["alertname"] for t in _unit_tests() for case in t.get("alert_rule_test", [])}
    assert used - names == set()


def test_alerts_with_for_are_tested_just_before_it_elapses() -> None:
    """Every alert with a `for` has a case expecting silence and a later one expecting it firing."""
    by_alert: dict[str, list[tuple[str, bool]]] = {}
    for test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            by_alert.setdefault(case["alertname"], []).append((test["name"], bool(case.get("exp_alerts"))))
    for alert in OUR_ALERTS:
        if alert.get("for"):
            outcomes = by_alert.get(alert["alert"], [])
            groups = {name for name, fired in outcomes if fired}
            assert any(name in groups for name, fired in outcomes if not fired), (
                f"{alert['alert']}: no unit-test group has both a silent and a firing case"
            )


def test_healthy_fleet_covers_every_alert_and_metric() -> None:
    spec = yaml.safe_load(HEALTHY.read_text())
    (test,) = spec["tests"]
    checked = {case["alertname"] for case in test["alert_rule_test"] if case["exp_alerts"] == []}
    assert {a["alert"] for a in OUR_ALERTS} <= checked
    fed = {s["series"].split("{")[0] for s in test["input_series"]}
    read = set()
    for rule in _rules(OUR_RULES):
        expr = re.sub(r"#.*", "", rule["expr"])
        read |= set(re.findall(r"\b(comfyui_[a-z_]+|up)\b(?=\s*[{\[)\s]|$)", expr))
    read = {m.removesuffix("_bucket") for m in read}
    # a histogram is fed through its _bucket series
    fed |= {m.removesuffix("_bucket") for m in fed}
    missing = read - fed - {"comfyui_prompt_execution_seconds"}
    assert missing == set(), f"the healthy fleet does not feed {sorted(missing)}"


def test_aggregations_keep_target_labels() -> None:
    """`sum by (...)` would drop target labels such as `chat`, which routing depends on."""
    for rule in _rules(OUR_RULES):
        assert not re.search(r"\bby\s*\(", rule["expr"]), (
            f"use `without`: {rule.get('alert') or rule['record']}"
        )


def _comments_inside_brackets(expr: str) -> list[str]:
    """Lines where a `#` comment starts inside `[...]`."""
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # label values may hold [ ] or #
    depth, bad = 0, []
    for line in code.splitlines():
        for char in line:
            if char == "#":
                if depth:
                    bad.append(line.strip())
                break  # the rest of the line is a comment
            depth += {"[": 1, "]": -1}.get(char, 0)
    return bad


@pytest.mark.parametrize("path", sorted(PROMETHEUS_DIR.glob("rules/*.yml")), ids=lambda p: p.name)
def test_no_comment_inside_a_range(path: Path) -> None:
    """Prometheus >= 3.4 lexes `[...]` as a duration expression and rejects `#` there ("unexpected
    character in duration expression"), although 2.x accepts it: such a rule file does not load on
    current Prometheus. Put the comment after the `]`."""
    bad = {
        rule.get("alert") or rule["record"]: found
        for rule in _rules(path)
        if (found := _comments_inside_brackets(rule["expr"]))
    }
    assert bad == {}, f"{path.name}: comments inside [...] break Prometheus >= 3.4: {bad}"


def test_comment_check_finds_comments_in_ranges() -> None:
    assert _comments_inside_brackets("increase(x[5m  # knob: a\n]) > 0") == ["increase(x[5m  # knob: a"]
    assert _comments_inside_brackets('increase(x{a="[#]"}[5m])  # knob: a\n> 0') == []
