# ruff: noqa: E501  (PromQL and panel descriptions read better unbroken)
"""Overview row "Throughput and failures": what finished, what failed, and which nodes raised.

Data: counters the exporter derives from ComfyUI's history, the one place outcomes are counted, so each
prompt counts once whichever source saw it first. The failure-ratio panel uses the ComfyUIHighFailureRate
window (15m) rather than $__rate_interval so it shows the number the alert compares.
"""

from __future__ import annotations

from typing import Any

from ..blocks import BLUE, GREEN, ORANGE, RATE, RED, SEL, override_by_name, runbook_link, steps, target
from ..panels import bargauge, stat, timeseries
from ..settings import thr


def panels() -> list[dict[str, Any]]:
    """The row's panels in reading order; dashboard.layout() wraps them at 24 columns."""
    fail_ratio = thr("failure_ratio")
    return [
        timeseries(
            "Finished prompts",
            "Prompts that reached ComfyUI's history per minute, any outcome "
            "(comfyui_prompts_finished_total), and the interrupted ones.",
            [
                target(
                    f"sum by (comfyui) (rate(comfyui_prompts_finished_total{{{SEL}}}[{RATE}])) * 60",
                    "{{comfyui}} finished",
                ),
                target(
                    f"sum by (comfyui) (rate(comfyui_prompts_interrupted_total{{{SEL}}}[{RATE}])) * 60",
                    "{{comfyui}} interrupted",
                ),
            ],
            unit="opm",
            w=8,
        ),
        timeseries(
            "Failures by error_type",
            "Failed prompts per minute by class "
            "(comfyui_prompt_failures_total): oom, cuda_error, model_not_found, model_load_error, "
            "node_exception. Details of each failure: the exporter's /failures page.",
            [
                target(
                    f"sum by (comfyui, error_type) (rate(comfyui_prompt_failures_total{{{SEL}}}[{RATE}])) * 60",
                    "{{comfyui}} {{error_type}}",
                )
            ],
            unit="opm",
            bars=True,
            stack=True,
            w=8,
            overrides=[
                override_by_name(".* oom", color={"mode": "fixed", "fixedColor": RED}),
                override_by_name(".* cuda_error", color={"mode": "fixed", "fixedColor": "purple"}),
            ],
            links=[
                runbook_link("comfyuioutofmemory", "Runbook: out of memory"),
                runbook_link("comfyuicudaerror", "Runbook: CUDA error"),
                runbook_link("comfyuipromptfailures", "Runbook: other failures"),
            ],
        ),
        timeseries(
            "Failure ratio (15 min)",
            "Failed / finished prompts over the last 15 minutes, the window the "
            f"high-failure-rate alert uses; the line is its threshold ({fail_ratio:.0%}). Gaps mean nothing "
            "finished.",
            [
                target(
                    f"sum by (comfyui) (increase(comfyui_prompt_failures_total{{{SEL}}}[15m]))\n/\n"
                    f"(sum by (comfyui) (increase(comfyui_prompts_finished_total{{{SEL}}}[15m])) > 0)",
                    "{{comfyui}}",
                )
            ],
            unit="percentunit",
            max_=1,
            thresholds=steps((None, GREEN), (fail_ratio, RED)),
            threshold_style="line+area",
            w=8,
            links=[runbook_link("comfyuihighfailurerate")],
        ),
        bargauge(
            "Top failing node types",
            "Node classes that raised in the time range (comfyui_node_failures_total by node_type).",
            [
                target(
                    f"topk(10, sum by (node_type) (increase(comfyui_node_failures_total{{{SEL}}}[$__range])) > 0)",
                    "{{node_type}}",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=steps((None, ORANGE), (10, RED)),
            w=8,
            no_value="no failures",
        ),
        bargauge(
            "Top exception types",
            "Python exception classes raised by nodes in the time range "
            "(comfyui_node_failures_total by exception_type).",
            [
                target(
                    f"topk(10, sum by (exception_type) (increase(comfyui_node_failures_total{{{SEL}}}[$__range])) > 0)",
                    "{{exception_type}}",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=steps((None, ORANGE), (10, RED)),
            w=8,
            no_value="no failures",
        ),
        stat(
            "Last failure",
            "When each error_type last failed (comfyui_last_failure_timestamp_seconds).",
            [
                target(
                    f"max by (error_type) (comfyui_last_failure_timestamp_seconds{{{SEL}}} > 0) * 1000",
                    "{{error_type}}",
                    instant=True,
                )
            ],
            unit="dateTimeFromNow",
            thresholds=steps((None, BLUE)),
            w=4,
            h=8,
            color_mode="none",
            no_value="never",
        ),
        stat(
            "Last finished",
            "When each ComfyUI last finished a prompt (comfyui_last_finish_timestamp_seconds).",
            [
                target(
                    f"(comfyui_last_finish_timestamp_seconds{{{SEL}}} > 0) * 1000",
                    "{{comfyui}}",
                    instant=True,
                )
            ],
            unit="dateTimeFromNow",
            thresholds=steps((None, BLUE)),
            w=4,
            h=8,
            color_mode="none",
            no_value="never",
        ),
        timeseries(
            "Cached nodes",
            "Nodes ComfyUI answered from its cache instead of executing, per minute "
            "(comfyui_prompt_cached_nodes_total). Higher is cheaper.",
            [
                target(
                    f"sum by (comfyui) (rate(comfyui_prompt_cached_nodes_total{{{SEL}}}[{RATE}])) * 60",
                    "{{comfyui}}",
                )
            ],
            unit="opm",
            w=24,
            h=6,
        ),
    ]
