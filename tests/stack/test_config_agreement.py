"""One source for every deployment's configs: the compose files (prometheus/prometheus.yml,
alertmanager/alertmanager.yml), the fast-profile copies, the local stack's rendered files and the
Kubernetes PrometheusRule agree on rules, routes, receivers, grouping and inhibitions.

The variants are generated from the shipped files (stack/render.py, stack/profiles.py,
deploy/kubernetes/gen_rules.py); this test compares their structure, so a route or receiver added to
the shipped file that a generator drops, or a hand edit of a generated file, fails here.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pytest
import yaml

from comfyui_exporter.stack import profiles, render
from comfyui_exporter.stack.settings import load_settings
from tests.support.binaries import free_port, run_tool

REPO = Path(__file__).resolve().parents[2]
PORTS = ("exporter", "prometheus", "alertmanager", "relay", "notify")
SMTP = {
    "COMFYUI_STACK_SMTP_SMARTHOST": "127.0.0.1:2525",
    "COMFYUI_STACK_SMTP_FROM": "alerts@localhost",
    "COMFYUI_STACK_SMTP_TO": "oncall@localhost",
}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _route(node: dict[str, Any]) -> dict[str, Any]:
    """A route without the profile knob (group_wait), children included."""
    out = {k: v for k, v in node.items() if k not in ("group_wait", "routes")}
    if node.get("routes"):
        out["routes"] = [_route(child) for child in node["routes"]]
    return out


def am_structure(config: dict[str, Any], *, email: bool = True) -> dict[str, Any]:
    receivers = {
        r["name"]: sorted(k for k in r if k.endswith("_configs") and (email or k != "email_configs"))
        for r in config["receivers"]
    }
    return {
        "route": _route(config["route"]),
        "inhibit_rules": config.get("inhibit_rules"),
        "receivers": receivers,
    }


def prom_structure(config: dict[str, Any], base: Path) -> dict[str, Any]:
    rule_files = sorted(
        str(Path(p).resolve()) for pattern in config["rule_files"] for p in glob.glob(str(base / pattern))
    )
    return {
        "rule_files": rule_files,
        "jobs": [job["job_name"] for job in config["scrape_configs"]],
        "alertmanagers": len(config["alerting"]["alertmanagers"]),
        "alert_relabel_configs": config["alerting"].get("alert_relabel_configs"),
        "evaluation_interval_set": "evaluation_interval" in config["global"],
    }


@pytest.fixture(scope="module")
def stack_configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    out = {}
    for name, env in (("plain", {}), ("smtp", SMTP)):
        layout = render.Layout(tmp_path_factory.mktemp(name), {p: free_port() for p in PORTS})
        out[name] = render.write_all(layout, load_settings(None, env), "fast")
    return out


def test_alertmanager_variants_agree(stack_configs: dict[str, dict[str, Path]]) -> None:
    shipped = _load(render.ALERTMANAGER_SOURCE)
    want = am_structure(shipped)
    assert want["receivers"] and want["route"]["routes"], "nothing to compare?"
    assert am_structure(_load(profiles.fast_path(render.ALERTMANAGER_SOURCE))) == want
    assert am_structure(_load(stack_configs["smtp"]["alertmanager"])) == want
    # Without SMTP settings the stack has no e-mail integration (it would dial a host nobody set);
    # everything else is the same.
    assert am_structure(_load(stack_configs["plain"]["alertmanager"])) == am_structure(shipped, email=False)


def test_prometheus_variants_agree(stack_configs: dict[str, dict[str, Path]]) -> None:
    source = render.PROMETHEUS_SOURCE
    want = prom_structure(_load(source), source.parent)
    assert want["rule_files"], "no rule files?"
    fast = profiles.fast_path(source)
    assert prom_structure(_load(fast), fast.parent) == want
    for configs in stack_configs.values():
        assert prom_structure(_load(configs["prometheus"]), source.parent) == want


def test_kubernetes_rules_are_the_shipped_rules() -> None:
    rule = _load(REPO / "deploy" / "kubernetes" / "exporter" / "prometheusrule.yaml")
    shipped = [g for p in sorted((REPO / "prometheus" / "rules").glob("*.yml")) for g in _load(p)["groups"]]
    assert rule["spec"]["groups"] == shipped


def test_fast_profile_files_are_fresh_and_accepted_by_promtool_and_amtool() -> None:
    assert profiles.main(["--check"]) == 0, "run: python -m comfyui_exporter.stack.profiles"
    fast_prom = profiles.fast_path(render.PROMETHEUS_SOURCE)
    glob_ = _load(fast_prom)["global"]
    assert glob_["scrape_interval"] == glob_["scrape_timeout"] == glob_["evaluation_interval"] == "1s"
    result = run_tool("promtool", "check", "config", str(fast_prom))
    assert result.returncode == 0, result.stdout + result.stderr
    fast_am = profiles.fast_path(render.ALERTMANAGER_SOURCE)
    assert _load(fast_am)["route"]["group_wait"] == "1s"
    result = run_tool("amtool", "check-config", str(fast_am))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_scrape_interval_alone_is_what_prometheus_refuses(tmp_path: Path) -> None:
    """The trap the fast files avoid: 1 s scrape_interval with the default 10 s timeout."""
    config = _load(render.PROMETHEUS_SOURCE)
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = []
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_tool("promtool", "check", "config", str(path))
    assert (
        result.returncode != 0
        and "scrape timeout greater than scrape interval" in result.stdout + result.stderr
    )
