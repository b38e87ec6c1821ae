"""One builder per Grafana panel type, holding the option blocks a panel of that type always needs.

Grafana's schema wants every option present (tests/deploy type-checks the JSON against @grafana/schema),
but a dashboard author cares about title, query, unit and thresholds. These builders take what the author
cares about as arguments and fill in the rest, the same way for every panel. Size comes in as w/h; the
position and id are left for dashboard.layout() to assign.
"""

from __future__ import annotations

from typing import Any

from .blocks import DS, GREEN, steps


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
    """The fields all panel types share; refIds are A, B, ... in query order, as Grafana numbers them."""
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
    """A list legend, or a table once there are calcs to show as columns."""
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
    """Lines or bars over time; threshold_style draws the alert thresholds as lines or bands."""
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
    """One value per series, coloured by thresholds so a row of stats reads at a glance."""
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
    """Horizontal bars for top-N rankings (instant queries over the time range)."""
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
    """0/1 gauges over time as coloured stretches: up/down, connected, throttled."""
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
    """Label sets of info-style metrics as rows: merge the queries, hide sample columns, rename labels."""
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
    """Prometheus histogram buckets as they are (calculate off): the query already counts per le."""
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
    """Markdown between panels, for what a panel description cannot hold."""
    return {
        "type": "text",
        "title": title,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "options": {"content": content, "mode": "markdown"},
    }
