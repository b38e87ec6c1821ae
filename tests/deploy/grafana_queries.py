"""Pull the PromQL out of a dashboard, substitute variables, and parse it with promtool."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from deploy_helpers import iter_panels, query_targets, tool
from grafana_interpolate import TimeContext, Var, interpolate

LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<sel>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")
QUERY_RESULT_RE = re.compile(r"^\s*query_result\((?P<q>.*)\)\s*$", re.S)


@dataclass(frozen=True)
class Query:
    owner: str  # "panel 12 'GPU temperature' A" or "variable comfyui"
    panel_id: int | None
    ref: str
    raw: str
    instant: bool
    fmt: str


def dashboard_variables(dashboard: dict[str, Any], picks: dict[str, list[str]]) -> dict[str, Var]:
    """Variables as Grafana would hold them with ``picks[name]`` selected (constants take their query)."""
    out: dict[str, Var] = {}
    for v in dashboard.get("templating", {}).get("list", []):
        name = v["name"]
        if v["type"] == "constant":
            out[name] = Var(name, [str(v.get("query", ""))])
        elif v["type"] == "datasource":
            out[name] = Var(name, picks.get(name, ["prometheus"]))
        else:
            out[name] = Var(
                name,
                picks.get(name, []),
                multi=bool(v.get("multi")),
                include_all=bool(v.get("includeAll")),
                all_value=v.get("allValue"),
            )
    return out


def panel_queries(panel: dict[str, Any]) -> list[Query]:
    return [
        Query(
            f"panel {panel['id']} {panel.get('title')!r} {t['refId']}",
            panel["id"],
            t["refId"],
            t["expr"],
            bool(t.get("instant")) and not t.get("range"),
            t.get("format", "time_series"),
        )
        for t in query_targets(panel)
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[Query]:
    out = []
    for v in dashboard.get("templating", {}).get("list", []):
        if v["type"] != "query":
            continue
        q = v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
        out.append(Query(f"variable {v['name']}", None, v["name"], q, True, "variable"))
    return out


def variable_query_as_promql(q: str) -> tuple[str, str | None]:
    """Grafana's Prometheus variable functions as (PromQL selector/expr, label or None)."""
    m = LABEL_VALUES_RE.match(q)
    if m:
        return (m.group("sel") or "up"), m.group("label")
    m = QUERY_RESULT_RE.match(q)
    if m:
        return m.group("q"), None
    raise ValueError(f"unsupported variable query {q!r}")


def all_queries(dashboard: dict[str, Any]) -> list[Query]:
    qs = [q for p in iter_panels(dashboard) for q in panel_queries(p)]
    return qs + variable_queries(dashboard)


def promtool_check(exprs: dict[str, list[str]]) -> dict[str, tuple[bool, str]]:
    """Parse each group's expressions as recording rules with one ``promtool check rules`` call.

    Returns {group: (ok, promtool output for that file)}."""
    promtool = tool("promtool")
    results: dict[str, tuple[bool, str]] = {}
    with tempfile.TemporaryDirectory(prefix="dash-promql-") as tmp:
        files = {}
        for i, (group, items) in enumerate(exprs.items()):
            path = Path(tmp) / f"g{i}.yml"
            rules = [{"record": f"dashboard:query{j}", "expr": e} for j, e in enumerate(items)]
            path.write_text(yaml.safe_dump({"groups": [{"name": f"g{i}", "rules": rules}]}), encoding="utf-8")
            files[group] = path
        proc = subprocess.run(
            [promtool, "check", "rules", *map(str, files.values())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for group, path in files.items():
            # stdout: "Checking <file>" then "  SUCCESS: ..." per good file; stderr: "<file>: <error>" lines.
            section = re.search(
                rf"Checking {re.escape(str(path))}\n(.*?)(?=\nChecking |\Z)", proc.stdout, re.S
            )
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{path}:")]
            ok = bool(section and "SUCCESS" in section.group(1)) and not errors
            results[group] = (ok, "\n".join(errors) or (section.group(1).strip() if section else proc.stderr))
    return results


STATIC_PICKS = {"comfyui": ["comfy-a", "comfy.b"], "gpu": ["0", "1"], "datasource": ["prometheus"]}
STATIC_TIME = TimeContext(from_s=0, to_s=6 * 3600, scrape_interval_s=15, max_data_points=1000)


def substituted(
    dashboard: dict[str, Any],
    raw: str,
    picks: dict[str, list[str]] | None = None,
    time: TimeContext = STATIC_TIME,
) -> str:
    return interpolate(raw, dashboard_variables(dashboard, picks or STATIC_PICKS), time)


def every_query_at_all(dashboards: Path) -> list[tuple[str, str]]:
    """(owner, PromQL) of every panel and variable query, each variable at "All": the heaviest selection.

    Shared by the fleet bench (which times them) and the long-term-storage test (which runs them
    against VictoriaMetrics), so both ask exactly what the dashboards would.
    """
    import json

    out = []
    for path in sorted(dashboards.glob("*.json")):
        dash = json.loads(path.read_text())
        variables = dashboard_variables(dash, {})
        for var in variables.values():
            if var.include_all:
                var.is_all = True
        ctx = TimeContext(from_s=0, to_s=3600, scrape_interval_s=15)
        for q in all_queries(dash):
            raw = variable_query_as_promql(q.raw)[0] if q.fmt == "variable" else q.raw
            out.append((f"{path.stem}: {q.owner}", interpolate(raw, variables, ctx)))
    return out
