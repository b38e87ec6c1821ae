# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""Overview row "Health": is each ComfyUI answering, has it restarted, what is firing, what runs where.

First because the rows below are only worth reading while comfyui_up is 1. Data: comfyui_up,
comfyui_restarts_total and comfyui_info from the exporter's polls of ComfyUI's HTTP API, plus Prometheus'
own ALERTS series.
"""

from __future__ import annotations

from typing import Any

from ..blocks import GREEN, ORANGE, RED, SEL, UP_MAPPINGS, panel_link, runbook_link, steps, target
from ..panels import stat, state_timeline, table


def panels() -> list[dict[str, Any]]:
    """The row's panels in reading order; dashboard.layout() wraps them at 24 columns."""
    return [
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
