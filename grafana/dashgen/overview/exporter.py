# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""Overview row "Exporter self-health": can the numbers in the rows above be trusted.

Data: comfyui_exporter_* about the exporter itself (NVML access, build, websocket, its requests to
ComfyUI, malformed messages, history gaps). Last because it explains gaps elsewhere rather than being
the first thing to look at.
"""

from __future__ import annotations

from typing import Any

from ..blocks import (
    CONNECTED_MAPPINGS,
    DASHED,
    GREEN,
    ISEL,
    RATE,
    RED,
    SEL,
    UP_MAPPINGS,
    override_by_name,
    runbook_link,
    steps,
    target,
)
from ..panels import stat, state_timeline, table, timeseries


def panels() -> list[dict[str, Any]]:
    """The row's panels in reading order; dashboard.layout() wraps them at 24 columns."""
    return [
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
                    f"sum by (comfyui, endpoint) (rate(comfyui_exporter_requests_total{{{SEL}}}[{RATE}]))",
                    "{{comfyui}} {{endpoint}}",
                ),
                target(
                    f"sum by (comfyui, endpoint) (rate(comfyui_exporter_request_failures_total{{{SEL}}}[{RATE}]))",
                    "{{comfyui}} {{endpoint}} failed",
                ),
            ],
            unit="reqps",
            overrides=[
                override_by_name(
                    ".* failed", custom__lineStyle=DASHED, color={"mode": "fixed", "fixedColor": RED}
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
                    f"(rate(comfyui_exporter_request_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
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
                    f"sum by (comfyui) (increase(comfyui_exporter_websocket_reconnects_total{{{SEL}}}[{RATE}]))",
                    "{{comfyui}} ws reconnects",
                ),
                target(
                    f"sum by (comfyui, source) (increase(comfyui_exporter_malformed_messages_total{{{SEL}}}[{RATE}]))",
                    "{{comfyui}} malformed {{source}}",
                ),
                target(
                    f"sum by (comfyui) (increase(comfyui_exporter_history_gaps_total{{{SEL}}}[{RATE}]))",
                    "{{comfyui}} history gaps",
                ),
            ],
            unit="none",
            bars=True,
            decimals=0,
            links=[runbook_link("comfyuimonitoringdegraded")],
        ),
    ]
