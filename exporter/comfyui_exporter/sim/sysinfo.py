"""``/system_stats`` payload: the recorded CPU server by default, or a CUDA-looking device.

ComfyUI reports exactly one device. On CPU the vram fields are RAM numbers; on CUDA the name is
``"cuda:0 <GPU name> : <allocator backend>"`` and torch_vram_* are the allocator's reserved bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

RAM_TOTAL = 25276510208


@dataclass
class DeviceOptions:
    """How the simulated torch device looks."""

    kind: str = "cpu"  # "cpu" or "cuda"
    name: str = "NVIDIA H200"
    vram_total: int = 150754820096
    argv: list[str] = field(
        default_factory=lambda: ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188"]
    )


def system_stats(opts: DeviceOptions, rng: random.Random, busy: bool) -> dict[str, Any]:
    """Build the response; free memory wiggles a little, and drops while a prompt runs on CUDA."""
    ram_free = RAM_TOTAL - 880_000_000 - rng.randrange(0, 40_000_000)
    system = {
        "os": "linux",
        "ram_total": RAM_TOTAL,
        "ram_free": ram_free,
        "comfyui_version": "0.8.0",
        "required_frontend_version": "1.35.9",
        "installed_templates_version": "0.7.67",
        "required_templates_version": "0.7.67",
        "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
        "pytorch_version": "2.13.0+cpu" if opts.kind == "cpu" else "2.13.0+cu130",
        "embedded_python": False,
        "argv": list(opts.argv),
    }
    if opts.kind == "cpu":
        device = {
            "name": "cpu",
            "type": "cpu",
            "index": None,
            "vram_total": RAM_TOTAL,
            "vram_free": ram_free,
            "torch_vram_total": RAM_TOTAL,
            "torch_vram_free": ram_free,
        }
    else:
        reserved = (opts.vram_total // 3) if busy else 0
        active = reserved - reserved // 8 if busy else 0
        driver_free = opts.vram_total - 600_000_000 - reserved
        device = {
            "name": f"cuda:0 {opts.name} : cudaMallocAsync",
            "type": "cuda",
            "index": 0,
            "vram_total": opts.vram_total,
            "vram_free": driver_free + (reserved - active),
            "torch_vram_total": reserved,
            "torch_vram_free": reserved - active,
        }
    return {"system": system, "devices": [device]}
