# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""Overview row "Latency": how long prompts wait in the queue and how long they run.

Data: the comfyui_prompt_execution_seconds and comfyui_prompt_queue_wait_seconds histograms, built from
history timestamps. Quantile lines show the trend; the heatmaps show the shape a p95 hides (a second
mode of slow prompts, for instance).
"""

from __future__ import annotations

from typing import Any

from ..blocks import RATE, SEL, target
from ..panels import heatmap, timeseries


def _quantiles(metric: str, extra: str = "") -> list[dict[str, Any]]:
    """p50 and p95 of one histogram per ComfyUI; extra narrows the selector (e.g. to one outcome)."""
    return [
        target(
            f"histogram_quantile({q}, sum by (le, comfyui) (rate({metric}_bucket{{{SEL}{extra}}}[{RATE}])))",
            "{{comfyui}} p" + str(round(q * 100)),
        )
        for q in (0.5, 0.95)
    ]


def panels() -> list[dict[str, Any]]:
    """The row's panels in reading order; dashboard.layout() wraps them at 24 columns."""
    return [
        timeseries(
            "Execution time p50 / p95",
            "Execution time of successful prompts, from ComfyUI's history "
            'timestamps (comfyui_prompt_execution_seconds{outcome="success"}).',
            _quantiles("comfyui_prompt_execution_seconds", ', outcome="success"'),
            unit="s",
            w=8,
        ),
        timeseries(
            "Queue wait p50 / p95",
            "Time from submission to start (comfyui_prompt_queue_wait_seconds).",
            _quantiles("comfyui_prompt_queue_wait_seconds"),
            unit="s",
            w=8,
        ),
        timeseries(
            "Mean execution time by outcome",
            "Average execution time per outcome (success, error, interrupted) over the rate window.",
            [
                target(
                    f"sum by (comfyui, outcome) (rate(comfyui_prompt_execution_seconds_sum{{{SEL}}}[{RATE}]))"
                    f"\n/\nsum by (comfyui, outcome) (rate(comfyui_prompt_execution_seconds_count{{{SEL}}}[{RATE}]))",
                    "{{comfyui}} {{outcome}}",
                )
            ],
            unit="s",
            w=8,
        ),
        heatmap(
            "Execution time distribution",
            "Prompts finished per execution-time bucket "
            "(comfyui_prompt_execution_seconds_bucket), all outcomes and selected instances.",
            [
                target(
                    f"sum by (le) (increase(comfyui_prompt_execution_seconds_bucket{{{SEL}}}[{RATE}]))",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            w=12,
        ),
        heatmap(
            "Queue wait distribution",
            "Prompts started per queue-wait bucket (comfyui_prompt_queue_wait_seconds_bucket).",
            [
                target(
                    f"sum by (le) (increase(comfyui_prompt_queue_wait_seconds_bucket{{{SEL}}}[{RATE}]))",
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            w=12,
        ),
    ]
