"""Overview row "Queue": is work piling up, or is the running prompt stuck.

Data: comfyui_queue_* and comfyui_running_prompt_* from the exporter's queue polls and the websocket's
progress events. The ComfyUIQueueBacklog and ComfyUIPromptStuck thresholds are drawn, so a series that
crosses a line is where the alert fires.
"""

from __future__ import annotations

from typing import Any

from ..blocks import DASHED, GREEN, ORANGE, RED, SEL, override_by_name, runbook_link, steps, target
from ..panels import timeseries
from ..settings import thr


def panels() -> list[dict[str, Any]]:
    """The row's panels in reading order; dashboard.layout() wraps them at 24 columns."""
    stuck_run = thr("stuck_running_seconds")
    stuck_prog = thr("stuck_no_progress_seconds")
    backlog_warn = thr("queue_backlog_warning_seconds")
    backlog_crit = thr("queue_backlog_critical_seconds")
    return [
        timeseries(
            "Prompts in queue",
            "Pending and running prompts (comfyui_queue_prompts). A pending count that "
            "only grows means ComfyUI is slower than its clients.",
            [target(f"sum by (comfyui, state) (comfyui_queue_prompts{{{SEL}}})", "{{comfyui}} {{state}}")],
            unit="none",
            decimals=0,
            stack=True,
            calcs=["lastNotNull", "max"],
            links=[runbook_link("comfyuiqueuestalled", "Runbook: queue stalled")],
        ),
        timeseries(
            "Oldest pending prompt age",
            "How long the oldest pending prompt has waited "
            "(comfyui_queue_oldest_pending_age_seconds). Lines: the backlog alert's warning "
            f"({backlog_warn:g} s) and critical ({backlog_crit:g} s) thresholds.",
            [target(f"comfyui_queue_oldest_pending_age_seconds{{{SEL}}}", "{{comfyui}}")],
            unit="s",
            thresholds=steps((None, GREEN), (backlog_warn, ORANGE), (backlog_crit, RED)),
            threshold_style="line+area",
            links=[runbook_link("comfyuiqueuebacklog")],
        ),
        timeseries(
            "Running prompt age",
            "Age of the running prompt, and time since it last reported progress "
            f"(dashed). A prompt counts as stuck when it has run over {stuck_run:g} s (red line) and sent no "
            f"progress for {stuck_prog:g} s (orange line on the dashed series).",
            [
                target(f"comfyui_running_prompt_age_seconds{{{SEL}}}", "{{comfyui}} running"),
                target(f"comfyui_running_prompt_progress_age_seconds{{{SEL}}}", "{{comfyui}} since progress"),
            ],
            unit="s",
            thresholds=steps((None, GREEN), (stuck_run, RED)),
            threshold_style="dashed",
            overrides=[
                override_by_name(
                    ".* since progress",
                    custom__lineStyle=DASHED,
                    thresholds=steps((None, GREEN), (stuck_prog, ORANGE)),
                )
            ],
            links=[runbook_link("comfyuipromptstuck")],
        ),
    ]
