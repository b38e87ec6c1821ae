"""Query, colour, link and field-config pieces that every panel shares, so they are spelled one way.

The selectors carry the dashboard variables ($comfyui, $instance, $gpu) into each query; tests/deploy
lints that every comfyui_* / GPU selector uses them, so writing SEL/GSEL/ISEL here instead of by hand in
each panel keeps that rule true by construction.
"""

from __future__ import annotations

from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'comfyui=~"$comfyui", instance=~"$instance"'
GSEL = 'instance=~"$instance", gpu=~"$gpu"'
ISEL = 'instance=~"$instance"'

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"

# Grafana sizes this window from the data source's scrape interval (timeInterval), so rate() always
# spans enough samples whatever the zoom.
RATE = "$__rate_interval"
# The line style of "limit" / "total" / "since progress" series drawn next to the series they bound.
DASHED = {"fill": "dash", "dash": [10, 10]}


def target(
    expr: str,
    legend: str = "__auto",
    *,
    instant: bool = False,
    fmt: str | None = None,
    interval: str | None = None,
) -> dict[str, Any]:
    """One Prometheus query in code mode; instant for "now" stats and bar gauges, range otherwise."""
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
    """Absolute thresholds from (value, colour) pairs; the first value is None, Grafana's base step."""
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
    """A panel link to a docs/runbooks.md section; tests check that the anchor exists."""
    return panel_link(title, "${runbook_url}#" + anchor)


def override_by_name(regex: str, **props: Any) -> dict[str, Any]:
    """Field overrides for series whose name matches; ``custom__lineStyle=`` means ``custom.lineStyle``."""
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [{"id": k.replace("__", "."), "value": v} for k, v in props.items()],
    }


# Value mappings for 0/1 gauges, so a stat or timeline says what the 0 means instead of showing it.
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
