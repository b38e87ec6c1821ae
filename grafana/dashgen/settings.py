"""The numbers and URLs an operator retunes, kept out of panel code so that retuning never means reading it.

A threshold here is drawn as a line on a panel; it must be the number the alert rule compares, so the
line is where the alert fires (tests/deploy/test_grafana_dashboards.py checks each one).
"""

from __future__ import annotations

from typing import Any

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


def thr(key: str) -> float:
    """The value of THRESHOLDS[key], so panel code reads as the threshold it draws."""
    return THRESHOLDS[key]["value"]
