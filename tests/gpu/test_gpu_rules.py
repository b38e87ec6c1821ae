"""prometheus/rules/gpu.yml: promtool, conventions, knobs vs docs/gpu.md, runbooks, metric names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .support import GOLDEN, REPO

RULES = REPO / "prometheus" / "rules" / "gpu.yml"
TESTS = REPO / "prometheus" / "tests" / "gpu_test.yml"
DOC = REPO / "docs" / "gpu.md"
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md#"
DASHBOARD_BASE = (
    "http://localhost:3000/d/comfyui-overview/comfyui-overview?var-instance={{ $labels.instance | urlquery }}"
)
KNOB = re.compile(r"([0-9][0-9.]*[smhd]?)[\s,)\]]*#\s*knob:\s*([a-z0-9_]+)\s*$")
# Metrics the GPU rules read that the exporter core exports, not the GPU collector.
CORE_METRICS = {"comfyui_queue_prompts"}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def alerts() -> list[dict]:  # type: ignore[type-arg]
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def knobs_in_rules() -> list[tuple[str, str]]:
    return [
        (m[2], m[1]) for line in RULES.read_text(encoding="utf-8").splitlines() if (m := KNOB.search(line))
    ]


def knobs_in_doc() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| `([^`]+)` \|", DOC.read_text(encoding="utf-8"), re.M)
    return dict(rows)


@needs_promtool
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", "tests/gpu_test.yml"],
        cwd=REPO / "prometheus",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """The unit tests pin behaviour: a retuned threshold must make them fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    mutated = RULES.read_text(encoding="utf-8").replace(
        "comfyui_gpu_temperature_celsius > 85", "comfyui_gpu_temperature_celsius > 90"
    )
    assert mutated != RULES.read_text(encoding="utf-8")
    (tmp_path / "rules" / "gpu.yml").write_text(mutated, encoding="utf-8")
    shutil.copy(TESTS, tmp_path / "tests" / "gpu_test.yml")
    result = subprocess.run(
        ["promtool", "test", "rules", "tests/gpu_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and "ComfyUIGPUTemperatureHigh" in result.stderr + result.stdout


def test_every_alert_follows_the_conventions() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert names == [
        "ComfyUIGPUMemoryLow",
        "ComfyUIGPUMemoryExhaustionPredicted",
        "ComfyUIGPUTemperatureHigh",
        "ComfyUIGPUThrottled",
        "ComfyUIGPUXidCritical",
        "ComfyUIGPUMissing",
        "ComfyUIGPUBusyQueueEmpty",
    ]
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}, rule["alert"]
        assert "{{" not in annotations["summary"], "summary is static"
        assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()
        assert annotations["dashboard_url"].startswith(DASHBOARD_BASE)


def test_the_runbook_base_matches_the_other_rule_files() -> None:
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        urls = re.findall(r"runbook_url: (\S+)#", path.read_text(encoding="utf-8"))
        assert set(urls) <= {RUNBOOK_BASE.rstrip("#")}, path.name


def test_every_alert_has_a_runbook_section() -> None:
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOKS.read_text(encoding="utf-8"), re.M)
    gpu_alerts = [rule["alert"] for rule in alerts()]
    assert [h for h in headings if h in gpu_alerts] == gpu_alerts


def test_every_alert_has_a_promtool_test() -> None:
    tested = set(re.findall(r"alertname: (\S+)", TESTS.read_text(encoding="utf-8")))
    assert {rule["alert"] for rule in alerts()} <= tested


def test_knobs_match_the_table_in_docs() -> None:
    in_rules = knobs_in_rules()
    table = knobs_in_doc()
    assert len(in_rules) >= 18
    assert {name for name, _ in in_rules} == set(table)
    for name, val in in_rules:
        assert table[name] == val, f"{name}: rules say {val}, docs/gpu.md says {table[name]}"


def test_the_knob_check_catches_a_change() -> None:
    line = "        expr: comfyui_gpu_temperature_celsius > 80  # knob: gpu_temperature_celsius"
    match = KNOB.search(line)
    assert match and match[1] != knobs_in_doc()["gpu_temperature_celsius"]


def test_the_xid_allowlist_matches_the_docs() -> None:
    (rule,) = [r for r in alerts() if r["alert"] == "ComfyUIGPUXidCritical"]
    in_rule = re.search(r'xid=~"([0-9|]+)"', rule["expr"])[1].split("|")  # type: ignore[index]
    section = DOC.read_text(encoding="utf-8").split("### XID allowlist")[1].split("\n## ")[0]
    in_doc = re.findall(r"^\| (\d+) \|", section, re.M)
    assert in_rule == in_doc
    assert "13" not in in_rule and "31" not in in_rule


def test_metric_names_in_rules_exist_in_the_exporters_exposition() -> None:
    exported = {
        line.split(" ")[2]
        for p in GOLDEN.glob("*.prom")
        for line in p.read_text().splitlines()
        if line.startswith("# TYPE ")
    }
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    text = "\n".join(
        yaml.safe_dump([r["expr"], r.get("annotations", {})]) for g in groups for r in g["rules"]
    )
    used = set(re.findall(r"(?<![:\w])(comfyui_[a-z_]+)\b", text))
    assert used - exported <= CORE_METRICS, used - exported - CORE_METRICS
