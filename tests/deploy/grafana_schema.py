"""Type-check Grafana dashboard JSON against Grafana's published TypeScript schema (npm @grafana/schema).

The dashboard becomes ``export const dashboard = (<json>) satisfies Json<Dashboard>;`` and every panel's
``options`` and ``fieldConfig.defaults.custom`` are checked against that panel plugin's generated
``Options`` / ``FieldConfig`` types. ``tsc --noEmit --strict`` then reports unknown keys, wrong types,
bad enum values and missing required fields.

``Json<T>`` lets a plain string stand where the schema has a TypeScript string enum: the saved JSON
model holds ``"thresholds"``, while TS would only accept ``FieldColorModeId.Thresholds``. Numeric enums
and everything else keep their exact types.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy_helpers import iter_panels, node_modules, tsc_path

PANEL_TYPES: dict[str, tuple[str, str, bool]] = {
    # Grafana panel type -> (composable dir, generated file stem, has FieldConfig)
    "timeseries": ("timeseries", "TimeSeriesPanelCfg_types.gen", True),
    "stat": ("stat", "StatPanelCfg_types.gen", False),
    "bargauge": ("bargauge", "BarGaugePanelCfg_types.gen", False),
    "table": ("table", "TablePanelCfg_types.gen", True),
    "heatmap": ("heatmap", "HeatmapPanelCfg_types.gen", True),
    "state-timeline": ("statetimeline", "StateTimelinePanelCfg_types.gen", True),
    "text": ("text", "TextPanelCfg_types.gen", False),
    "gauge": ("gauge", "GaugePanelCfg_types.gen", False),
    "piechart": ("piechart", "PieChartPanelCfg_types.gen", True),
}

PRELUDE = """\
import type {{ Dashboard }} from '@grafana/schema';
{imports}
type Json<T> = T extends string ? T | `${{T}}`
  : T extends number | boolean | null | undefined ? T
  : T extends Array<infer U> ? Array<Json<U>>
  : T extends object ? {{ [K in keyof T]: Json<T[K]> }}
  : T;
"""


@dataclass
class TscResult:
    returncode: int
    errors: list[str]  # "label: message"
    source: str


class UnknownPanelType(Exception):
    pass


def build_source(dashboard: dict[str, Any], panel_checks: bool = True) -> tuple[str, dict[int, str]]:
    """TypeScript source plus a map from source line to what that line checks."""
    panels = list(iter_panels(dashboard)) if panel_checks else []
    used = sorted({p["type"] for p in panels})
    unknown = [t for t in used if t not in PANEL_TYPES]
    if unknown:
        raise UnknownPanelType(f"no @grafana/schema mapping for panel type(s) {unknown}; add to PANEL_TYPES")
    imports = "\n".join(
        f"import type * as {_ident(t)} from '@grafana/schema/dist/esm/raw/composable/"
        f"{PANEL_TYPES[t][0]}/panelcfg/x/{PANEL_TYPES[t][1]}';"
        for t in used
    )
    lines = PRELUDE.format(imports=imports).splitlines()
    labels: dict[int, str] = {}

    def emit(label: str, name: str, value: Any, type_: str) -> None:
        body = json.dumps(value, indent=1).splitlines()
        start = len(lines) + 1
        lines.append(f"// {label}")
        lines.append(f"export const {name} = (")
        lines.extend(body)
        lines.append(f") satisfies Json<{type_}>;")
        for n in range(start, len(lines) + 1):
            labels[n] = label

    emit("dashboard", "dashboard", dashboard, "Dashboard")
    for p in panels:
        ns = _ident(p["type"])
        label = f"panel {p.get('id')} {p.get('title')!r} ({p['type']})"
        emit(f"{label} options", f"options_{p['id']}", p.get("options", {}), f"{ns}.Options")
        if PANEL_TYPES[p["type"]][2]:
            custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
            emit(
                f"{label} fieldConfig.defaults.custom",
                f"custom_{p['id']}",
                custom,
                f"Partial<{ns}.FieldConfig>",
            )
    return "\n".join(lines) + "\n", labels


def _ident(panel_type: str) -> str:
    return "p_" + re.sub(r"\W", "_", panel_type)


def check(dashboard: dict[str, Any], panel_checks: bool = True) -> TscResult:
    return check_many({"dashboard": (dashboard, panel_checks)})["dashboard"]


def check_many(cases: dict[str, tuple[dict[str, Any], bool]]) -> dict[str, TscResult]:
    """Type-check several dashboards in one tsc run (one module each); errors are reported per case."""
    tsc = tsc_path()
    sources = {
        f"case{i}.ts": (name, *build_source(d, panel_checks))
        for i, (name, (d, panel_checks)) in enumerate(cases.items())
    }
    with tempfile.TemporaryDirectory(prefix="dash-ts-") as tmp:
        root = Path(tmp)
        os.symlink(node_modules(), root / "node_modules", target_is_directory=True)
        for file, (_, source, _) in sources.items():
            (root / file).write_text(source, encoding="utf-8")
        options = {
            "strict": True,
            "noEmit": True,
            "target": "es2022",
            "module": "esnext",
            "moduleResolution": "bundler",
            "skipLibCheck": True,
            "types": [],
        }
        (root / "tsconfig.json").write_text(
            json.dumps({"compilerOptions": options, "files": sorted(sources)}), encoding="utf-8"
        )
        proc = subprocess.run(
            [str(tsc), "-p", str(root / "tsconfig.json"), "--pretty", "false"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
    errors: dict[str, list[str]] = {name: [] for name, _, _ in sources.values()}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"(case\d+\.ts)\((\d+),(\d+)\): (.*)", line)
        if m and m.group(1) in sources:
            name, _, labels = sources[m.group(1)]
            errors[name].append(f"{labels.get(int(m.group(2)), 'prelude')} (line {m.group(2)}): {m.group(4)}")
        elif line.strip() and not line.startswith(" "):
            for errs in errors.values():  # not attributable to one file: report it everywhere
                errs.append(line)
    if proc.returncode != 0 and not any(errors.values()):
        for errs in errors.values():
            errs.append(
                f"tsc exited {proc.returncode} without a diagnostic: {proc.stdout[-500:]}{proc.stderr[-500:]}"
            )
    return {
        name: TscResult(1 if errors[name] else 0, errors[name], source)
        for name, source, _ in sources.values()
    }
