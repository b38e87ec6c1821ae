"""The "ComfyUI overview" dashboard (uid comfyui-overview): one module per row, top to bottom.

The rows follow the path of a prompt and then of the data about it: is ComfyUI up (health), is work
waiting (queue), what came out (throughput and failures), how long it took (latency), what the GPU did
meanwhile (gpu), and whether the exporter saw all of it (exporter). Panel ids follow from this order,
so moving a panel renumbers those after it (and any viewPanel= bookmark to them).
"""

from __future__ import annotations

from typing import Any

from ..dashboard import COMMON_LINKS, dashboard, layout
from . import exporter, gpu, health, latency, queue, throughput


def overview() -> dict[str, Any]:
    """The whole dashboard document; a new panel goes into its row module, a new row into this list."""
    panels = layout(
        [
            ("Health", health.panels()),
            ("Queue", queue.panels()),
            ("Throughput and failures", throughput.panels()),
            ("Latency", latency.panels()),
            ("GPU", gpu.panels()),
            ("Exporter self-health", exporter.panels()),
        ]
    )
    return dashboard(
        "comfyui-overview",
        "ComfyUI overview",
        "Health, queue, throughput, failures, latency and GPUs of ComfyUI servers, from comfyui-exporter.",
        panels,
        gpu=True,
        links=COMMON_LINKS,
        annotations=[],
    )
