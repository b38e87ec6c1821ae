# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""Overview row "GPU": memory, utilisation, temperature, power, throttling and XID errors.

Data: NVML, read by the exporter at scrape time (comfyui_gpu_*, filtered by $gpu), next to what ComfyUI
itself reports per device in /system_stats (comfyui_device_*, filtered by $comfyui), so the VRAM panel
still works on hosts without NVML.
"""

from __future__ import annotations

from typing import Any

from ..blocks import (
    ACTIVE_MAPPINGS,
    DASHED,
    GREEN,
    GSEL,
    ORANGE,
    RED,
    SEL,
    override_by_name,
    runbook_link,
    steps,
    target,
)
from ..panels import bargauge, state_timeline, timeseries
from ..settings import thr


def panels() -> list[dict[str, Any]]:
    """The row's panels in reading order; dashboard.layout() wraps them at 24 columns."""
    low_vram = thr("low_vram_available_ratio")
    gpu_free = thr("gpu_free_memory_ratio")
    temp = thr("gpu_temperature_celsius")
    return [
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
            "(which includes PyTorch's reserved-but-unused cache), as a fraction of total (works without NVML). The "
            f"line is the ComfyUILowVRAM threshold ({low_vram:.0%}).",
            [
                target(
                    f"comfyui_device_vram_free_bytes{{{SEL}}}\n/ (comfyui_device_vram_total_bytes{{{SEL}}} > 0)",
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
            overrides=[override_by_name(".* total", custom__lineStyle=DASHED, custom__fillOpacity=0)],
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
            overrides=[override_by_name(".* limit", custom__lineStyle=DASHED, custom__fillOpacity=0)],
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
