"""Turn lists of panels into one dashboard: grid positions, ids, variables, links, the outer document.

Grafana wants absolute x/y for every panel and unique ids; computing them here means a dashboard module
only lists panels in reading order, and inserting one never means renumbering the rest. The variables
($datasource, $instance, $comfyui, $gpu and the two URL constants) are defined here because every query
built with blocks.SEL/GSEL/ISEL and every link built with blocks.runbook_link depends on them.
"""

from __future__ import annotations

from typing import Any

from .blocks import DS
from .settings import ALERTMANAGER_URL, RUNBOOK_URL, SCHEMA_VERSION


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
    """A multi-select query variable whose All matches everything (.*), even series Grafana has not listed."""
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
    """The template variables; $gpu only on dashboards with GPU panels."""
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
            "description": "Where docs/runbooks.md is published; panel links append #anchors. "
            "Edit for your fork.",
            "skipUrlSync": True,
        },
        {
            "name": "alertmanager_url",
            "type": "constant",
            "hide": 2,
            "query": ALERTMANAGER_URL,
            "description": "Alertmanager's external URL "
            "(the docker-compose stack publishes it on localhost:9093).",
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
    """The dashboard document around the laid-out panels; uid is the file name and the link target."""
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
    """A link in the dashboard's top bar."""
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


# The top-bar links every ComfyUI dashboard carries: runbooks, Alertmanager, and the other dashboards.
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
