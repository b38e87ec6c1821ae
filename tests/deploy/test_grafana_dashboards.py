"""Static checks of grafana/dashboards/*.json: generated, schema-valid, parseable PromQL, consistent.

The "returns data" checks against a live Prometheus are in test_grafana_data.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import (
    BUILTIN_SERIES,
    DASHBOARD_FILES,
    HISTOGRAMS,
    METRICS,
    REPO,
    iter_panels,
    load_dashboard,
    panel_by_id,
    panel_cases,
    query_targets,
    variable,
)
from grafana_interpolate import references
from grafana_queries import all_queries, panel_queries, promtool_check, substituted, variable_query_as_promql
from grafana_schema import check as tsc_check
from grafana_schema import check_many as tsc_check_many

EXPECTED_UIDS = {"comfyui-overview"}
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
RUNBOOKS = REPO / "docs" / "runbooks.md"
RULES_DIR = REPO / "prometheus" / "rules"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_generate", REPO / "grafana" / "generate.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()


def test_dashboards_exist_with_stable_uids() -> None:
    uids = {}
    for path in DASHBOARD_FILES:
        d = load_dashboard(path)
        assert path.name == f"{d['uid']}.json", (
            f"{path.name}: file name must be <uid>.json (uid {d['uid']!r})"
        )
        uids[d["uid"]] = path
    assert set(uids) == EXPECTED_UIDS, (
        "dashboard UIDs are part of the interface (links, bookmarks): keep them"
    )


def test_json_is_what_generate_py_writes() -> None:
    assert {f.name for f in DASHBOARD_FILES} == set(GEN.DASHBOARDS), "a JSON file without a generator entry"
    for name, builder in GEN.DASHBOARDS.items():
        committed = (REPO / "grafana" / "dashboards" / name).read_text(encoding="utf-8")
        assert committed == GEN.render(builder), f"{name} is stale: run python grafana/generate.py"


# ------------------------------------------------------------------------------------------ schema (tsc)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_matches_grafana_schema(path: Path) -> None:
    result = tsc_check(load_dashboard(path))
    assert result.returncode == 0 and not result.errors, "\n".join(result.errors)


MUTATIONS = ["unknown_key", "bad_enum", "bad_option", "missing_type", "bad_custom"]


def _mutated(mutation: str) -> tuple[dict[str, Any], bool, str]:
    """A broken copy of the first dashboard, whether to run the per-panel checks, and where tsc must point."""
    d = copy.deepcopy(load_dashboard(DASHBOARD_FILES[0]))
    panels = list(iter_panels(d))
    ts = next(p for p in panels if p["type"] == "timeseries")
    stat = next(p for p in panels if p["type"] == "stat")
    if mutation == "unknown_key":
        d["refreshh"] = "30s"
        return d, True, "dashboard"
    if mutation == "bad_enum":
        ts["fieldConfig"]["defaults"]["thresholds"]["mode"] = "absolut"
        return d, True, "dashboard"
    if mutation == "bad_option":
        stat["options"]["colorMode"] = "rainbow"
        return d, True, f"panel {stat['id']}"
    if mutation == "missing_type":
        del ts["type"]
        return d, False, "dashboard"  # the per-panel checks need a type to pick a schema
    ts["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "dots"
    return d, True, f"panel {ts['id']}"


@pytest.fixture(scope="module")
def mutation_results() -> dict[str, Any]:
    cases = {}
    for m in MUTATIONS:
        d, panel_checks, _ = _mutated(m)
        cases[m] = (d, panel_checks)
    return tsc_check_many(cases)


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_schema_check_rejects_broken_dashboards(mutation: str, mutation_results: dict[str, Any]) -> None:
    """The validator must be able to fail: each deliberate defect yields a tsc error naming its place."""
    _, _, where = _mutated(mutation)
    result = mutation_results[mutation]
    assert result.returncode != 0
    assert any(e.startswith(where) for e in result.errors), result.errors


# ------------------------------------------------------------------------------------------ PromQL parses


@pytest.fixture(scope="module")
def promtool_results() -> dict[str, tuple[bool, str]]:
    groups: dict[str, list[str]] = {}
    for path in DASHBOARD_FILES:
        d = load_dashboard(path)
        for q in all_queries(d):
            key = f"{d['uid']}/{q.panel_id if q.panel_id is not None else q.owner}"
            expr = substituted(d, q.raw)
            if q.fmt == "variable":
                expr = variable_query_as_promql(expr)[0]
            groups.setdefault(key, []).append(expr)
    return promtool_check(groups)


@pytest.mark.parametrize(("path", "panel_id"), panel_cases())
def test_panel_promql_parses(
    path: Path, panel_id: int, promtool_results: dict[str, tuple[bool, str]]
) -> None:
    d = load_dashboard(path)
    panel = panel_by_id(path, panel_id)
    if not query_targets(panel):
        assert panel["type"] == "text", "a data panel without queries"
        return
    ok, out = promtool_results[f"{d['uid']}/{panel_id}"]
    exprs = [substituted(d, q.raw) for q in panel_queries(panel)]
    assert ok, f"promtool could not parse:\n{out}\nexpressions:\n" + "\n---\n".join(exprs)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_variable_queries_parse(path: Path, promtool_results: dict[str, tuple[bool, str]]) -> None:
    d = load_dashboard(path)
    for key, (ok, out) in promtool_results.items():
        if key.startswith(f"{d['uid']}/variable"):
            assert ok, f"{key}: {out}"


def test_promql_check_can_fail() -> None:
    res = promtool_check(
        {"good": ["sum(rate(comfyui_up[5m]))"], "bad": ['sum(rate(comfyui_up{comfyui=~"(a|b)"}[5m])']}
    )
    assert res["good"][0] and not res["bad"][0], res
    assert "unclosed left parenthesis" in res["bad"][1]


# ------------------------------------------------------------------------------------------ lint

METRIC_RE = re.compile(r"\b((?:comfyui_|ALERTS\b)[A-Za-z0-9_]*)")
SELECTOR_RE = re.compile(r"\b((?:comfyui_|ALERTS)[A-Za-z0-9_]*)\s*\{([^}]*)\}")
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LABEL_MATCHER_RE = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
EXTRA_LABELS = {"instance", "job", "le", "__name__"}


def _base_metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def _labels_of(metric: str) -> set[str]:
    base = _base_metric(metric)
    labels = set(METRICS.get(base, BUILTIN_SERIES.get(base, ())))
    if base in HISTOGRAMS:
        labels.add("le")
    return labels | EXTRA_LABELS


@pytest.mark.parametrize(("path", "panel_id"), panel_cases())
def test_panel_lint(path: Path, panel_id: int) -> None:
    p = panel_by_id(path, panel_id)
    problems: list[str] = []
    if p["type"] != "text":
        if len(p.get("description", "")) < 20:
            problems.append("needs a description (shown as the panel's (i) tooltip)")
        if p.get("datasource") != DS_REF:
            problems.append(f"panel datasource must be {DS_REF}")
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        unit = p["options"]["yAxis"].get("unit") if p["type"] == "heatmap" else defaults.get("unit")
        if not unit:
            problems.append("no unit")
        if p["type"] != "heatmap":
            steps = defaults.get("thresholds", {}).get("steps", [])
            if not steps or steps[0].get("value") is not None or not all(s.get("color") for s in steps):
                problems.append("thresholds must start with a base step (value null) and colour every step")
        targets = query_targets(p)
        if not targets:
            problems.append("no queries")
        if len({t["refId"] for t in targets}) != len(targets):
            problems.append("duplicate refId")
    for t in query_targets(p):
        expr = t["expr"]
        if t.get("datasource") != DS_REF:
            problems.append(f"{t['refId']}: target datasource must be {DS_REF}")
        names = set(METRIC_RE.findall(expr))
        unknown = {n for n in names if _base_metric(n) not in METRICS and n not in BUILTIN_SERIES}
        if unknown:
            problems.append(f"{t['refId']}: metrics not in the contract: {sorted(unknown)}")
            continue
        known_labels = set().union(*(_labels_of(n) for n in names)) if names else EXTRA_LABELS
        for m in SELECTOR_RE.finditer(expr):
            metric, body = m.group(1), m.group(2)
            labels = _labels_of(metric)
            for lbl in LABEL_MATCHER_RE.findall(body):
                if lbl not in labels:
                    problems.append(f"{t['refId']}: {metric} has no label {lbl!r}")
            if "comfyui" in METRICS.get(_base_metric(metric), ()) and 'comfyui=~"$comfyui"' not in body:
                problems.append(f'{t["refId"]}: {metric} must be filtered by comfyui=~"$comfyui"')
            if (
                "gpu" in METRICS.get(_base_metric(metric), ())
                and "comfyui" not in METRICS[_base_metric(metric)]
                and 'gpu=~"$gpu"' not in body
            ):
                problems.append(f'{t["refId"]}: {metric} must be filtered by gpu=~"$gpu"')
        bare = [
            n
            for n in names
            if re.search(rf"\b{n}\b(?!\s*\{{)", expr)
            and ("comfyui" in METRICS.get(_base_metric(n), ()) or "gpu" in METRICS.get(_base_metric(n), ()))
        ]
        if bare:
            problems.append(f"{t['refId']}: unfiltered selector(s) {bare}")
        for m in GROUPING_RE.finditer(expr):
            for lbl in (x.strip() for x in m.group(1).split(",")):
                if lbl and lbl not in known_labels:
                    problems.append(f"{t['refId']}: groups by {lbl!r}, which no metric in the query has")
        legend = t.get("legendFormat", "")
        for lbl in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
            if lbl not in known_labels:
                problems.append(f"{t['refId']}: legend uses {{{{{lbl}}}}}, which the series do not have")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_layout_ids_and_variables(path: Path) -> None:
    d = load_dashboard(path)
    ids = [p["id"] for p in d["panels"]] + [c["id"] for p in d["panels"] for c in p.get("panels", [])]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: dict[tuple[int, int], int] = {}
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, f"panel {p['id']} outside the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]} and {p['id']} overlap"
                cells[(x, y)] = p["id"]
    ds = variable(d, "datasource")
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    inst = variable(d, "comfyui")
    assert inst["type"] == "query" and inst["multi"] and inst["includeAll"]
    assert "comfyui" in inst["query"]
    gpu = variable(d, "gpu")
    assert gpu["type"] == "query" and gpu["multi"]
    # every variable a query or link uses is defined (the substitution raises KeyError otherwise)
    defined = {v["name"] for v in d["templating"]["list"]}
    used: set[str] = set()
    for q in all_queries(d):
        used |= {r for r in references(q.raw) if not r.startswith("__")}
        substituted(d, q.raw)
    links = [link["url"] for link in d.get("links", []) if link.get("url")]
    links += [link["url"] for p in iter_panels(d) for link in p.get("links", [])]
    for url in links:
        used |= {r for r in references(url) if not r.startswith("__")}
    assert used <= defined, f"undefined variables {used - defined}"
    assert any("${runbook_url}" in u for u in links), "no link to the runbooks"
    assert any("${alertmanager_url}" in u for u in links), "no link to Alertmanager"


def test_rows_cover_the_issue() -> None:
    d = load_dashboard(REPO / "grafana" / "dashboards" / "comfyui-overview.json")
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    for want in ("Health", "Queue", "Throughput and failures", "Latency", "GPU", "Exporter self-health"):
        assert want in rows
    titles = {p["title"] for p in iter_panels(d)}
    kinds = {p["type"] for p in iter_panels(d)}
    assert "heatmap" in kinds
    exprs = "\n".join(t["expr"] for p in iter_panels(d) for t in query_targets(p))
    for needle in (
        "ALERTS",
        "comfyui_gpu_throttle_reasons",
        "comfyui_gpu_xid_errors_total",
        "histogram_quantile(0.95",
        "histogram_quantile(0.5",
        "comfyui_restarts_total",
        "comfyui_exporter_websocket_connected",
        "comfyui_node_failures_total",
    ):
        assert needle in exprs, needle
    assert "Running prompt age" in titles


# ------------------------------------------------------------------------------------------ cross-checks


def _github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"[`*_]|<[^>]+>", "", m.group(1)).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
        anchors |= set(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return anchors


def _need(path: Path, what: str) -> None:
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing ({what})")


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_runbook_links_point_at_existing_sections(path: Path) -> None:
    _need(RUNBOOKS, "runbook anchors")
    anchors = _github_anchors(RUNBOOKS.read_text(encoding="utf-8"))
    d = load_dashboard(path)
    wanted = {
        link["url"].split("#", 1)[1]
        for p in iter_panels(d)
        for link in p.get("links", [])
        if link["url"].startswith("${runbook_url}#")
    }
    assert wanted, "no panel links to a runbook section"
    missing = sorted(wanted - anchors)
    assert not missing, f"docs/runbooks.md has no section for {missing}; sections: {sorted(anchors)}"


def _rule_exprs() -> list[tuple[str, str]]:
    out = []
    for f in sorted(RULES_DIR.glob("*.yml")) + sorted(RULES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for g in doc.get("groups", []):
            for r in g.get("rules", []):
                out.append((r.get("alert") or r.get("record"), str(r["expr"])))
    return out


def _numbers(expr: str) -> set[float]:
    return {float(x) for x in re.findall(r"(?<![\w.\[])(\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?![\w\]])", expr)}


@pytest.mark.parametrize("key", sorted(GEN.THRESHOLDS))
def test_drawn_thresholds_match_alert_rules(key: str) -> None:
    """A threshold line on a panel must be the number an alert rule compares that metric with."""
    _need(RULES_DIR, "alert thresholds")
    spec = GEN.THRESHOLDS[key]
    rules = _rule_exprs()
    records = {name: expr for name, expr in rules if name and ":" in name}

    def expand(expr: str, depth: int = 0) -> str:
        # recording rules used by an alert are followed down to the raw metrics
        used = [e for rec, e in records.items() if re.search(rf"(?<![\w:]){re.escape(rec)}(?![\w:])", expr)]
        return expr + " " + " ".join(expand(e, depth + 1) for e in used) if used and depth < 5 else expr

    related = [
        (name, expr) for name, expr in rules if name and ":" not in name and spec["metric"] in expand(expr)
    ]
    assert related, f"no rule uses {spec['metric']}; drop the threshold or add the rule"
    numbers = set().union(*(_numbers(e) for _, e in related))
    value = float(spec["value"])
    assert value in numbers or any(abs(n - value * 100) < 1e-9 for n in numbers), (
        f"{key}={value} is drawn on the dashboard but the rules on {spec['metric']} compare with "
        f"{sorted(numbers)}: {related}"
    )


def test_thresholds_are_drawn() -> None:
    d = json.dumps(load_dashboard(REPO / "grafana" / "dashboards" / "comfyui-overview.json"))
    for key, spec in GEN.THRESHOLDS.items():
        assert json.dumps(spec["value"]) in d, f"{key} not drawn"
