#!/usr/bin/env python3
# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""Generate the Grafana dashboards in grafana/dashboards/ from one readable Python description.

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if a committed JSON file differs from what this writes

The JSON files are the product (Grafana provisions them, people import them); this script only keeps
ids, grid positions, units and the variable plumbing consistent. Edit here, regenerate, commit both.
tests/deploy/test_dashboards.py fails when the two drift apart.

Standard library only, so it runs anywhere the repo is checked out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"

SCHEMA_VERSION = 39  # Grafana 11.x; newer Grafana migrates it on load.

# Alert thresholds drawn on panels. They mirror prometheus/rules/*.yml; tests/deploy checks that each value
# appears in a rule expression on the same metric, so a retuned rule makes the test fail until this follows.
THRESHOLDS: dict[str, dict[str, Any]] = {
    # ComfyUIPromptStuck: running longer than this ...
    "stuck_running_seconds": {"value": 1800, "metric": "comfyui_running_prompt_age_seconds"},
    # ... and no progress event for this long.
    "stuck_no_progress_seconds": {"value": 600, "metric": "comfyui_running_prompt_progress_age_seconds"},
    # ComfyUIQueueBacklog warning and critical tiers.
    "queue_backlog_warning_seconds": {"value": 600, "metric": "comfyui_queue_oldest_pending_age_seconds"},
    "queue_backlog_critical_seconds": {"value": 1800, "metric": "comfyui_queue_oldest_pending_age_seconds"},
    # ComfyUIHighFailureRate: failed / finished over 15 minutes.
    "failure_ratio": {"value": 0.25, "metric": "comfyui_prompt_failures_total"},
    # ComfyUILowVRAM: (free + torch reserved-but-free) / total, as ComfyUI reports it.
    "low_vram_available_ratio": {"value": 0.05, "metric": "comfyui_device_vram_free_bytes"},
    # ComfyUIGPUMemoryLow: NVML free memory below this fraction of total (or a floor in bytes).
    "gpu_free_memory_ratio": {"value": 0.05, "metric": "comfyui_gpu_memory_free_bytes"},
    # ComfyUIGPUTemperatureHigh.
    "gpu_temperature_celsius": {"value": 85, "metric": "comfyui_gpu_temperature_celsius"},
}

# The same base URL the alert rules put in runbook_url (prometheus/rules/*.yml); tests check they agree.
RUNBOOK_URL = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md"
ALERTMANAGER_URL = "http://localhost:9093"

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'comfyui=~"$comfyui", instance=~"$instance"'
GSEL = 'instance=~"$instance", gpu=~"$gpu"'
ISEL = 'instance=~"$instance"'

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"


def thr(value: str) -> float:
    return THRESHOLDS[value]["value"]


# --------------------------------------------------------------------------------------------- building blocks


def target(
    expr: str,
    legend: str = "__auto",
    *,
    instant: bool = False,
    fmt: str | None = None,
    interval: str | None = None,
) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }
    if fmt:
        t["format"] = fmt
    if interval:
        t["interval"] = interval
    return t


def steps(*pairs: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in pairs]}


def panel_link(title: str, url: str) -> dict[str, Any]:
    # Grafana reads title/url/targetBlank; the rest makes it a full DashboardLink as the schema requires.
    return {
        "asDropdown": False,
        "icon": "doc",
        "includeVars": False,
        "keepTime": False,
        "tags": [],
        "targetBlank": True,
        "title": title,
        "tooltip": "",
        "type": "link",
        "url": url,
    }


def runbook_link(anchor: str, title: str = "Runbook") -> dict[str, Any]:
    return panel_link(title, "${runbook_url}#" + anchor)


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    w: int,
    h: int,
    options: dict[str, Any],
    defaults: dict[str, Any],
    overrides: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    refs = "ABCDEFGHIJ"
    p: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
        "targets": [{**t, "refId": refs[i]} for i, t in enumerate(targets)],
    }
    if links:
        p["links"] = links
    if transformations:
        p["transformations"] = transformations
    return p


def legend(placement: str = "bottom", calcs: list[str] | None = None, table: bool = False) -> dict[str, Any]:
    return {
        "calcs": calcs or [],
        "displayMode": "table" if table else "list",
        "placement": placement,
        "showLegend": True,
    }


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    w: int = 8,
    h: int = 8,
    thresholds: dict[str, Any] | None = None,
    threshold_style: str = "off",
    stack: bool = False,
    bars: bool = False,
    min_: float | None = 0,
    max_: float | None = None,
    decimals: int | None = None,
    calcs: list[str] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "axisBorderShow": False,
        "axisPlacement": "auto",
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else (25 if stack else 10),
        "gradientMode": "none",
        "lineInterpolation": "linear",
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": threshold_style},
    }
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "unit": unit,
        "thresholds": thresholds or steps((None, GREEN)),
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "legend": legend("bottom", calcs, table=bool(calcs)),
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries",
        title,
        description,
        targets,
        w=w,
        h=h,
        options=options,
        defaults=defaults,
        overrides=overrides,
        links=links,
    )


def stat(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    thresholds: dict[str, Any],
    w: int = 4,
    h: int = 5,
    mappings: list[dict[str, Any]] | None = None,
    no_value: str | None = None,
    graph: bool = False,
    decimals: int | None = None,
    calc: str = "lastNotNull",
    color_mode: str = "background",
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": thresholds,
        "unit": unit,
    }
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "colorMode": color_mode,
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": "value_and_name",
        "wideLayout": True,
    }
    return _panel(
        "stat", title, description, targets, w=w, h=h, options=options, defaults=defaults, links=links
    )


def bargauge(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    thresholds: dict[str, Any],
    w: int = 8,
    h: int = 8,
    decimals: int | None = 0,
    no_value: str | None = None,
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "thresholds": thresholds,
        "unit": unit,
        "min": 0,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    options = {
        "displayMode": "gradient",
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": False},
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }
    return _panel(
        "bargauge", title, description, targets, w=w, h=h, options=options, defaults=defaults, links=links
    )


def state_timeline(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    mappings: list[dict[str, Any]],
    thresholds: dict[str, Any],
    w: int = 8,
    h: int = 8,
    unit: str = "none",
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defaults = {
        "color": {"mode": "thresholds"},
        "custom": {
            "fillOpacity": 80,
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "lineWidth": 0,
        },
        "mappings": mappings,
        "thresholds": thresholds,
        "unit": unit,
    }
    options = {
        "alignValue": "left",
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": False},
        "mergeValues": True,
        "rowHeight": 0.85,
        "showValue": "never",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _panel(
        "state-timeline",
        title,
        description,
        targets,
        w=w,
        h=h,
        options=options,
        defaults=defaults,
        links=links,
    )


def table(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    w: int,
    h: int,
    exclude: list[str],
    rename: dict[str, str],
    unit: str = "none",
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defaults = {
        "color": {"mode": "thresholds"},
        "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
        "thresholds": steps((None, GREEN)),
        "unit": unit,
    }
    options = {"cellHeight": "sm", "frameIndex": 0, "showHeader": True}
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {name: True for name in exclude},
                "renameByName": rename,
            },
        },
    ]
    return _panel(
        "table",
        title,
        description,
        targets,
        w=w,
        h=h,
        options=options,
        defaults=defaults,
        overrides=overrides,
        transformations=transformations,
    )


def heatmap(
    title: str, description: str, targets: list[dict[str, Any]], *, w: int = 12, h: int = 9, y_unit: str = "s"
) -> dict[str, Any]:
    defaults = {
        "custom": {
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "scaleDistribution": {"type": "linear"},
        }
    }
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "exponent": 0.5,
            "fill": "dark-orange",
            "mode": "scheme",
            "reverse": False,
            "scale": "exponential",
            "scheme": "Oranges",
            "steps": 64,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "showValue": "never",
        "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": y_unit},
    }
    return _panel("heatmap", title, description, targets, w=w, h=h, options=options, defaults=defaults)


def text(title: str, content: str, *, w: int = 24, h: int = 3) -> dict[str, Any]:
    return {
        "type": "text",
        "title": title,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "options": {"content": content, "mode": "markdown"},
    }


def override_by_name(regex: str, **props: Any) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()],
    }


UP_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"color": RED, "index": 0, "text": "DOWN"},
            "1": {"color": GREEN, "index": 1, "text": "UP"},
        },
    }
]
CONNECTED_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"color": RED, "index": 0, "text": "disconnected"},
            "1": {"color": GREEN, "index": 1, "text": "connected"},
        },
    }
]
ACTIVE_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"color": "transparent", "index": 0, "text": "inactive"},
            "1": {"color": ORANGE, "index": 1, "text": "active"},
        },
    }
]


# --------------------------------------------------------------------------------------------- layout


def layout(rows: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Flow panels left to right in 24 columns, one Grafana row panel per section; ids in reading order."""
    out: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, panels in rows:
        out.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "id": next_id,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_h = 0
        for p in panels:
            w, h = p["gridPos"]["w"], p["gridPos"]["h"]
            if x + w > 24:
                y += line_h
                x, line_h = 0, 0
            p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            p["id"] = next_id
            next_id += 1
            x += w
            line_h = max(line_h, h)
            out.append(p)
        y += line_h
    return out


def _query_var(name: str, label: str, query: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "refresh": 2,
        "sort": 7,
        "hide": 0,
        "regex": "",
        "description": description,
    }


def variables(gpu: bool) -> list[dict[str, Any]]:
    v: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "description": "The Prometheus that scrapes comfyui-exporter.",
        },
        _query_var(
            "instance",
            "Exporter",
            "label_values(comfyui_exporter_build_info, instance)",
            "Exporter scrape targets (Prometheus' instance label). Alert links preselect it.",
        ),
        _query_var(
            "comfyui",
            "ComfyUI",
            'label_values(comfyui_up{instance=~"$instance"}, comfyui)',
            "ComfyUI instances: the NAME in the exporter's --comfyui-url NAME=URL.",
        ),
    ]
    if gpu:
        v.append(
            _query_var(
                "gpu",
                "GPU",
                'label_values(comfyui_gpu_info{instance=~"$instance"}, gpu)',
                "GPUs the exporter reads through NVML (index as NVML numbers them on that host).",
            )
        )
    v += [
        {
            "name": "runbook_url",
            "type": "constant",
            "hide": 2,
            "query": RUNBOOK_URL,
            "description": "Where docs/runbooks.md is published; panel links append #anchors. Edit for your fork.",
            "skipUrlSync": True,
        },
        {
            "name": "alertmanager_url",
            "type": "constant",
            "hide": 2,
            "query": ALERTMANAGER_URL,
            "description": "Alertmanager's external URL (the docker-compose stack publishes it on localhost:9093).",
            "skipUrlSync": True,
        },
    ]
    return v


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    *,
    gpu: bool,
    links: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                *annotations,
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": links,
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["comfyui", "comfyui-exporter"],
        "templating": {"list": variables(gpu)},
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def dash_link(title: str, url: str, icon: str = "external link", tooltip: str = "") -> dict[str, Any]:
    return {
        "asDropdown": False,
        "icon": icon,
        "includeVars": False,
        "keepTime": False,
        "tags": [],
        "targetBlank": True,
        "title": title,
        "tooltip": tooltip,
        "type": "link",
        "url": url,
    }


COMMON_LINKS = [
    dash_link("Runbooks", "${runbook_url}", "doc", "docs/runbooks.md: what each alert means and what to do"),
    dash_link("Alertmanager", "${alertmanager_url}/#/alerts", "bolt", "Firing alerts and silences"),
    dash_link(
        "Silence an alert",
        "${alertmanager_url}/#/silences/new",
        "bolt",
        "Create a silence (maintenance, known issue)",
    ),
    {
        "asDropdown": True,
        "icon": "external link",
        "includeVars": True,
        "keepTime": True,
        "tags": ["comfyui"],
        "targetBlank": False,
        "title": "ComfyUI dashboards",
        "tooltip": "",
        "type": "dashboards",
    },
]


# --------------------------------------------------------------------------------------------- overview


def overview() -> dict[str, Any]:
    stuck_run = thr("stuck_running_seconds")
    stuck_prog = thr("stuck_no_progress_seconds")
    backlog_warn = thr("queue_backlog_warning_seconds")
    backlog_crit = thr("queue_backlog_critical_seconds")
    fail_ratio = thr("failure_ratio")
    low_vram = thr("low_vram_available_ratio")
    gpu_free = thr("gpu_free_memory_ratio")
    temp = thr("gpu_temperature_celsius")
    rate = "$__rate_interval"
    dashed = {"fill": "dash", "dash": [10, 10]}

    health = [
        stat(
            "ComfyUI up",
            "1 when the exporter's last poll of ComfyUI's HTTP API succeeded (comfyui_up). "
            "DOWN means the process is gone, hung, or unreachable from the exporter.",
            [target(f"comfyui_up{{{SEL}}}", "{{comfyui}}")],
            unit="none",
            mappings=UP_MAPPINGS,
            thresholds=steps((None, RED), (1, GREEN)),
            w=5,
            links=[runbook_link("comfyuidown")],
        ),
        stat(
            "Restarts in range",
            "ComfyUI process restarts the exporter detected within the dashboard time "
            "range (comfyui_restarts_total). Queued prompts are lost on a restart.",
            [
                target(
                    f"sum by (comfyui) (increase(comfyui_restarts_total{{{SEL}}}[$__range]))",
                    "{{comfyui}}",
                    instant=True,
                )
            ],
            unit="none",
            decimals=0,
            no_value="0",
            thresholds=steps((None, GREEN), (1, ORANGE), (3, RED)),
            w=4,
            links=[runbook_link("comfyuirestarted")],
        ),
        stat(
            "Firing alerts",
            'Alerts this Prometheus is firing now (ALERTS{alertstate="firing"}), by severity: '
            "those of the selected ComfyUI instances and those without a comfyui label (exporter, relay, GPU). "
            "Open Alertmanager from the dashboard links to see or silence them.",
            [
                target(
                    'count by (severity) (ALERTS{alertstate="firing", comfyui=~"$comfyui|"})',
                    "{{severity}}",
                )
            ],
            unit="none",
            decimals=0,
            no_value="0",
            thresholds=steps((None, GREEN), (1, RED)),
            w=5,
            links=[panel_link("Alertmanager", "${alertmanager_url}/#/alerts")],
        ),
        table(
            "Versions",
            "comfyui_info: what each ComfyUI reports in /system_stats.",
            [target(f"comfyui_info{{{SEL}}}", instant=True, fmt="table")],
            w=10,
            h=5,
            exclude=["Time", "Value", "__name__", "job"],
            rename={
                "comfyui": "ComfyUI",
                "instance": "Exporter",
                "version": "Version",
                "python_version": "Python",
                "pytorch_version": "PyTorch",
                "device_type": "Device",
                "device_name": "Device name",
            },
        ),
        state_timeline(
            "Availability",
            "comfyui_up over time: red stretches are outages seen by the exporter.",
            [target(f"comfyui_up{{{SEL}}}", "{{comfyui}}")],
            mappings=UP_MAPPINGS,
            thresholds=steps((None, RED), (1, GREEN)),
            w=24,
            h=5,
        ),
    ]

    queue = [
        timeseries(
            "Prompts in queue",
            "Pending and running prompts (comfyui_queue_prompts). A pending count that "
            "only grows means ComfyUI is slower than its clients.",
            [target(f"sum by (comfyui, state) (comfyui_queue_prompts{{{SEL}}})", "{{comfyui}} {{state}}")],
            unit="none",
            decimals=0,
            stack=True,
            calcs=["lastNotNull", "max"],
            links=[runbook_link("comfyuiqueuestalled", "Runbook: queue stalled")],
        ),
        timeseries(
            "Oldest pending prompt age",
            "How long the oldest pending prompt has waited "
            "(comfyui_queue_oldest_pending_age_seconds). Lines: the backlog alert's warning "
            f"({backlog_warn:g} s) and critical ({backlog_crit:g} s) thresholds.",
            [target(f"comfyui_queue_oldest_pending_age_seconds{{{SEL}}}", "{{comfyui}}")],
            unit="s",
            thresholds=steps((None, GREEN), (backlog_warn, ORANGE), (backlog_crit, RED)),
            threshold_style="line+area",
            links=[runbook_link("comfyuiqueuebacklog")],
        ),
        timeseries(
            "Running prompt age",
            "Age of the running prompt, and time since it last reported progress "
            f"(dashed). A prompt counts as stuck when it has run over {stuck_run:g} s (red line) and sent no "
            f"progress for {stuck_prog:g} s (orange line on the dashed series).",
            [
                target(f"comfyui_running_prompt_age_seconds{{{SEL}}}", "{{comfyui}} running"),
                target(f"comfyui_running_prompt_progress_age_seconds{{{SEL}}}", "{{comfyui}} since progress"),
            ],
            unit="s",
            thresholds=steps((None, GREEN), (stuck_run, RED)),
            threshold_style="dashed",
            overrides=[
                override_by_name(
                    ".* since progress",
                    custom__lineStyle=dashed,
                    thresholds=steps((None, GREEN), (stuck_prog, ORANGE)),
                )
            ],
            links=[runbook_link("comfyuipromptstuck")],
        ),
    ]

    throughput = [
        timeseries(
            "Finished prompts",
            "Prompts that reached ComfyUI's history per minute, any outcome "
            "(comfyui_prompts_finished_total), and the interrupted ones.",
            [
                target(
                    f"sum by (comfyui) (rate(comfyui_prompts_finished_total{{{SEL}}}[{rate}])) * 60",
                    "{{comfyui}} finished",
                ),
                target(
                    f"sum by (comfyui) (rate(comfyui_prompts_interrupted_total{{{SEL}}}[{rate}])) * 60",
                    "{{comfyui}} interrupted",
                ),
            ],
            unit="opm",
            w=8,
        ),
        timeseries(
            "Failures by error_type",
            "Failed prompts per minute by class "
            "(comfyui_prompt_failures_total): oom, cuda_error, model_not_found, model_load_error, "
            "node_exception. Details of each failure: the exporter's /failures page.",
            [
                target(
                    f"sum by (comfyui, error_type) (rate(comfyui_prompt_failures_total{{{SEL}}}[{rate}])) * 60",
                    "{{comfyui}} {{error_type}}",
                )
            ],
            unit="opm",
            bars=True,
            stack=True,
            w=8,
            overrides=[
                override_by_name(".* oom", color={"mode": "fixed", "fixedColor": RED}),
                override_by_name(".* cuda_error", color={"mode": "fixed", "fixedColor": "purple"}),
            ],
            links=[
                runbook_link("comfyuioutofmemory", "Runbook: out of memory"),
                runbook_link("comfyuicudaerror", "Runbook: CUDA error"),
                runbook_link("comfyuipromptfailures", "Runbook: other failures"),
            ],
        ),
        timeseries(
            "Failure ratio (15 min)",
            "Failed / finished prompts over the last 15 minutes, the window the "
            f"high-failure-rate alert uses; the line is its threshold ({fail_ratio:.0%}). Gaps mean nothing "
            "finished.",
            [
                target(
                    f"sum by (comfyui) (increase(comfyui_prompt_failures_total{{{SEL}}}[15m]))\n/\n"
                    f"(sum by (comfyui) (increase(comfyui_prompts_finished_total{{{SEL}}}[15m])) > 0)",
                    "{{comfyui}}",
                )
            ],
            unit="percentunit",
            max_=1,
            thresholds=steps((None, GREEN), (fail_ratio, RED)),
            threshold_style="line+area",
            w=8,
            links=[runbook_link("comfyuihighfailurerate")],
        ),
        bargauge(
            "Top failing node types",
            "Node classes that raised in the time range (comfyui_node_failures_total by node_type).",
            [
                target(
                    f"topk(10, sum by (node_type) (increase(comfyui_node_failures_total{{{SEL}}}[$__range])) > 0)",
                    "{{node_type}}",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=steps((None, ORANGE), (10, RED)),
            w=8,
            no_value="no failures",
        ),
        bargauge(
            "Top exception types",
            "Python exception classes raised by nodes in the time range "
            "(comfyui_node_failures_total by exception_type).",
            [
                target(
                    f"topk(10, sum by (exception_type) (increase(comfyui_node_failures_total{{{SEL}}}[$__range])) > 0)",
                    "{{exception_type}}",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=steps((None, ORANGE), (10, RED)),
            w=8,
            no_value="no failures",
        ),
        stat(
            "Last failure",
            "When each error_type last failed (comfyui_last_failure_timestamp_seconds).",
            [
                target(
                    f"max by (error_type) (comfyui_last_failure_timestamp_seconds{{{SEL}}} > 0) * 1000",
                    "{{error_type}}",
                    instant=True,
                )
            ],
            unit="dateTimeFromNow",
            thresholds=steps((None, BLUE)),
            w=4,
            h=8,
            color_mode="none",
            no_value="never",
        ),
        stat(
            "Last finished",
            "When each ComfyUI last finished a prompt (comfyui_last_finish_timestamp_seconds).",
            [
                target(
                    f"(comfyui_last_finish_timestamp_seconds{{{SEL}}} > 0) * 1000",
                    "{{comfyui}}",
                    instant=True,
                )
            ],
            unit="dateTimeFromNow",
            thresholds=steps((None, BLUE)),
            w=4,
            h=8,
            color_mode="none",
            no_value="never",
        ),
        timeseries(
            "Cached nodes",
            "Nodes ComfyUI answered from its cache instead of executing, per minute "
            "(comfyui_prompt_cached_nodes_total). Higher is cheaper.",
            [
                target(
                    f"sum by (comfyui) (rate(comfyui_prompt_cached_nodes_total{{{SEL}}}[{rate}])) * 60",
                    "{{comfyui}}",
                )
            ],
            unit="opm",
            w=24,
            h=6,
        ),
    ]

    def quantiles(metric: str, extra: str = "") -> list[dict[str, Any]]:
        return [
            target(
                f"histogram_quantile({q}, sum by (le, comfyui) (rate({metric}_bucket{{{SEL}{extra}}}[{rate}])))",
                "{{comfyui}} p" + str(round(q * 100)),
            )
            for q in (0.5, 0.95)
        ]

    latency = [
        timeseries(
            "Execution time p50 / p95",
            "Execution time of successful prompts, from ComfyUI's history "
            'timestamps (comfyui_prompt_execution_seconds{outcome="success"}).',
            quantiles("comfyui_prompt_execution_seconds", ', outcome="success"'),
            unit="s",
            w=8,
        ),
        timeseries(
            "Queue wait p50 / p95",
            "Time from submission to start (comfyui_prompt_queue_wait_seconds).",
            quantiles("comfyui_prompt_queue_wait_seconds"),
            unit="s",
            w=8,
        ),
        timeseries(
            "Mean execution time by outcome",
            "Average execution time per outcome (success, error, interrupted) over the rate window.",
            [
                target(
                    f"sum by (comfyui, outcome) (rate(comfyui_prompt_execution_seconds_sum{{{SEL}}}[{rate}]))"
                    f"\n/\nsum by (comfyui, outcome) (rate(comfyui_prompt_execution_seconds_count{{{SEL}}}[{rate}]))",
                    "{{comfyui}} {{outcome}}",
                )
            ],
            unit="s",
            w=8,
        ),
        heatmap(
            "Execution time distribution",
            "Prompts finished per execution-time bucket "
            "(comfyui_prompt_execution_seconds_bucket), all outcomes and selected instances.",
            [
                target(
                    f"sum by (le) (increase(comfyui_prompt_execution_seconds_bucket{{{SEL}}}[{rate}]))",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            w=12,
        ),
        heatmap(
            "Queue wait distribution",
            "Prompts started per queue-wait bucket (comfyui_prompt_queue_wait_seconds_bucket).",
            [
                target(
                    f"sum by (le) (increase(comfyui_prompt_queue_wait_seconds_bucket{{{SEL}}}[{rate}]))",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            w=12,
        ),
    ]

    gpu = [
        timeseries(
            "GPU free memory",
            "Free memory per GPU as a fraction of its total, from NVML "
            "(comfyui_gpu_memory_free_bytes / comfyui_gpu_memory_total_bytes). The line is the low-memory "
            f"threshold ({gpu_free:.0%}).",
            [
                target(
                    f"comfyui_gpu_memory_free_bytes{{{GSEL}}}\n/ on (instance, gpu, uuid)\n"
                    f"comfyui_gpu_memory_total_bytes{{{GSEL}}}",
                    "{{instance}} GPU {{gpu}}",
                )
            ],
            unit="percentunit",
            max_=1,
            thresholds=steps((None, RED), (gpu_free, GREEN)),
            threshold_style="line+area",
            links=[runbook_link("comfyuigpumemorylow")],
        ),
        timeseries(
            "VRAM available to ComfyUI",
            "What ComfyUI reports in /system_stats, per device: free memory "
            "plus PyTorch's reserved-but-unused cache, as a fraction of total (works without NVML). The "
            f"line is the ComfyUILowVRAM threshold ({low_vram:.0%}).",
            [
                target(
                    f"(comfyui_device_vram_free_bytes{{{SEL}}} + comfyui_device_torch_reserved_free_bytes{{{SEL}}})"
                    f"\n/ (comfyui_device_vram_total_bytes{{{SEL}}} > 0)",
                    "{{comfyui}} {{device}}",
                )
            ],
            unit="percentunit",
            max_=1,
            thresholds=steps((None, RED), (low_vram, GREEN)),
            threshold_style="line+area",
            links=[runbook_link("comfyuilowvram")],
        ),
        timeseries(
            "GPU memory",
            "Used and total bytes per GPU (NVML), and PyTorch's reserved memory as ComfyUI reports it.",
            [
                target(f"comfyui_gpu_memory_used_bytes{{{GSEL}}}", "{{instance}} GPU {{gpu}} used"),
                target(f"comfyui_gpu_memory_total_bytes{{{GSEL}}}", "{{instance}} GPU {{gpu}} total"),
                target(
                    f"comfyui_device_torch_reserved_bytes{{{SEL}}}", "{{comfyui}} {{device}} torch reserved"
                ),
            ],
            unit="bytes",
            overrides=[override_by_name(".* total", custom__lineStyle=dashed, custom__fillOpacity=0)],
        ),
        timeseries(
            "GPU utilisation",
            "SM and memory-controller utilisation per GPU (NVML).",
            [
                target(f"comfyui_gpu_utilization_ratio{{{GSEL}}}", "{{instance}} GPU {{gpu}} SM"),
                target(f"comfyui_gpu_memory_utilization_ratio{{{GSEL}}}", "{{instance}} GPU {{gpu}} memory"),
            ],
            unit="percentunit",
            max_=1,
        ),
        timeseries(
            "GPU temperature",
            f"Core temperature (NVML). The line is the alert threshold ({temp:g} °C).",
            [target(f"comfyui_gpu_temperature_celsius{{{GSEL}}}", "{{instance}} GPU {{gpu}}")],
            unit="celsius",
            min_=None,
            thresholds=steps((None, GREEN), (temp - 10, ORANGE), (temp, RED)),
            threshold_style="line",
            links=[runbook_link("comfyuigputemperaturehigh")],
        ),
        timeseries(
            "GPU power",
            "Power draw and enforced power limit (NVML).",
            [
                target(f"comfyui_gpu_power_watts{{{GSEL}}}", "{{instance}} GPU {{gpu}} draw"),
                target(f"comfyui_gpu_power_limit_watts{{{GSEL}}}", "{{instance}} GPU {{gpu}} limit"),
            ],
            unit="watt",
            overrides=[override_by_name(".* limit", custom__lineStyle=dashed, custom__fillOpacity=0)],
        ),
        state_timeline(
            "GPU throttling",
            "Clock-throttle reasons per GPU (comfyui_gpu_throttle_reasons); orange "
            "while a reason is active. Idle and application-clock reasons are harmless; thermal and "
            "power-brake reasons slow ComfyUI down.",
            [
                target(
                    f"max by (instance, gpu, reason) (comfyui_gpu_throttle_reasons{{{GSEL}}})",
                    "{{instance}} GPU {{gpu}} {{reason}}",
                )
            ],
            mappings=ACTIVE_MAPPINGS,
            thresholds=steps((None, "transparent"), (1, ORANGE)),
            w=12,
            h=8,
            links=[runbook_link("comfyuigputhrottled")],
        ),
        bargauge(
            "XID errors in range",
            "NVIDIA driver XID errors per GPU and code in the time range "
            "(comfyui_gpu_xid_errors_total). 13/31/43/45 usually mean an application fault; 48/63/64/74/79/94/95 "
            "point to hardware or the driver and often need a reset.",
            [
                target(
                    f"sum by (instance, gpu, xid) (increase(comfyui_gpu_xid_errors_total{{{GSEL}}}[$__range]))",
                    "{{instance}} GPU {{gpu}} XID {{xid}}",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=steps((None, GREEN), (1, RED)),
            w=12,
            no_value="none",
            links=[runbook_link("comfyuigpuxidcritical")],
        ),
    ]

    exporter = [
        stat(
            "NVML",
            "comfyui_exporter_nvml_up: 1 when the exporter can read GPUs through NVML. 0 on hosts "
            "without an NVIDIA driver, or when the container lacks the NVIDIA runtime (docs/deploy.md).",
            [target(f"max by (instance) (comfyui_exporter_nvml_up{{{ISEL}}})", "{{instance}}")],
            unit="none",
            mappings=UP_MAPPINGS,
            thresholds=steps((None, RED), (1, GREEN)),
            w=4,
        ),
        table(
            "Exporter build",
            "comfyui_exporter_build_info per exporter process.",
            [target(f"comfyui_exporter_build_info{{{ISEL}}}", instant=True, fmt="table")],
            w=6,
            h=5,
            exclude=["Time", "Value", "__name__", "job"],
            rename={"instance": "Exporter", "version": "Version"},
        ),
        state_timeline(
            "Websocket",
            "comfyui_exporter_websocket_connected: the exporter's live event stream from "
            "ComfyUI. While it is down the exporter still polls /queue and /history.",
            [target(f"comfyui_exporter_websocket_connected{{{SEL}}}", "{{comfyui}}")],
            mappings=CONNECTED_MAPPINGS,
            thresholds=steps((None, RED), (1, GREEN)),
            w=14,
            h=5,
        ),
        timeseries(
            "ComfyUI API requests",
            "Requests the exporter makes to ComfyUI per second, by endpoint, "
            "and the failed ones (dashed red).",
            [
                target(
                    f"sum by (comfyui, endpoint) (rate(comfyui_exporter_requests_total{{{SEL}}}[{rate}]))",
                    "{{comfyui}} {{endpoint}}",
                ),
                target(
                    f"sum by (comfyui, endpoint) (rate(comfyui_exporter_request_failures_total{{{SEL}}}[{rate}]))",
                    "{{comfyui}} {{endpoint}} failed",
                ),
            ],
            unit="reqps",
            overrides=[
                override_by_name(
                    ".* failed", custom__lineStyle=dashed, color={"mode": "fixed", "fixedColor": RED}
                )
            ],
            links=[runbook_link("comfyuimonitoringdegraded")],
        ),
        timeseries(
            "ComfyUI API latency p95",
            "95th percentile of the exporter's requests to ComfyUI by endpoint "
            "(comfyui_exporter_request_duration_seconds). A slow /history usually means a long history; "
            "see docs/operations.md.",
            [
                target(
                    f"histogram_quantile(0.95, sum by (le, comfyui, endpoint) "
                    f"(rate(comfyui_exporter_request_duration_seconds_bucket{{{SEL}}}[{rate}])))",
                    "{{comfyui}} {{endpoint}}",
                )
            ],
            unit="s",
        ),
        timeseries(
            "Exporter anomalies",
            "Websocket reconnects, malformed messages from ComfyUI and history gaps "
            "(prompts that left history before the exporter saw them) per rate window. Any of these "
            "means some counts may be missing.",
            [
                target(
                    f"sum by (comfyui) (increase(comfyui_exporter_websocket_reconnects_total{{{SEL}}}[{rate}]))",
                    "{{comfyui}} ws reconnects",
                ),
                target(
                    f"sum by (comfyui, source) (increase(comfyui_exporter_malformed_messages_total{{{SEL}}}[{rate}]))",
                    "{{comfyui}} malformed {{source}}",
                ),
                target(
                    f"sum by (comfyui) (increase(comfyui_exporter_history_gaps_total{{{SEL}}}[{rate}]))",
                    "{{comfyui}} history gaps",
                ),
            ],
            unit="none",
            bars=True,
            decimals=0,
            links=[runbook_link("comfyuimonitoringdegraded")],
        ),
    ]

    panels = layout(
        [
            ("Health", health),
            ("Queue", queue),
            ("Throughput and failures", throughput),
            ("Latency", latency),
            ("GPU", gpu),
            ("Exporter self-health", exporter),
        ]
    )
    return dashboard(
        "comfyui-overview",
        "ComfyUI overview",
        "Health, queue, throughput, failures, latency and GPUs of ComfyUI servers, from comfyui-exporter.",
        panels,
        gpu=True,
        links=COMMON_LINKS,
        annotations=[],
    )


DASHBOARDS = {"comfyui-overview.json": overview}


def render(builder: Any) -> str:
    return json.dumps(builder(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if the committed JSON differs")
    args = ap.parse_args(argv)
    stale = []
    for name, builder in DASHBOARDS.items():
        path = OUT_DIR / name
        text_ = render(builder)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text_:
                stale.append(name)
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text_, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
