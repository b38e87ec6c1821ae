"""``/system_stats`` payload: the recorded CPU server by default, or CUDA-looking devices.

ComfyUI up to 0.8.0 reports exactly one device (the one it runs on), even on a multi-GPU host;
0.38 lists every torch device, its own first. On CPU the vram fields are RAM numbers; on CUDA the
name is ``"cuda:N <GPU name> : <allocator backend>"`` and torch_vram_* are the allocator's reserved
bytes. Version strings and the RAM size come from the simulated version's profile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .versions import DEFAULT_VERSION, PROFILES, VersionProfile

RAM_TOTAL = 25276510208


@dataclass
class DeviceOptions:
    """How the simulated torch devices look."""

    kind: str = "cpu"  # "cpu" or "cuda"
    name: str = "NVIDIA H200"
    vram_total: int = 150754820096
    count: int = 1  # CUDA devices on the host (--gpus); ComfyUI runs on the first
    argv: list[str] = field(
        default_factory=lambda: ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188"]
    )


def _cuda_device(opts: DeviceOptions, index: int, busy: bool) -> dict[str, Any]:
    """One CUDA entry; only the device ComfyUI runs on (index 0) holds torch memory."""
    busy = busy and index == 0
    reserved = (opts.vram_total // 3) if busy else 0
    active = reserved - reserved // 8 if busy else 0
    driver_free = opts.vram_total - 600_000_000 - reserved
    return {
        "name": f"cuda:{index} {opts.name} : cudaMallocAsync",
        "type": "cuda",
        "index": index,
        "vram_total": opts.vram_total,
        "vram_free": driver_free + (reserved - active),
        "torch_vram_total": reserved,
        "torch_vram_free": reserved - active,
    }


def system_stats(
    opts: DeviceOptions, rng: random.Random, busy: bool, prof: VersionProfile | None = None
) -> dict[str, Any]:
    """Build the response; free memory wiggles a little, and drops while a prompt runs on CUDA."""
    prof = prof or PROFILES[DEFAULT_VERSION]
    ram_total = prof.ram_total
    ram_free = ram_total - 880_000_000 - rng.randrange(0, 40_000_000)
    system: dict[str, Any] = {
        "os": prof.os_name,
        "ram_total": ram_total,
        "ram_free": ram_free,
        "comfyui_version": prof.version,
        "required_frontend_version": prof.frontend_version,
        "installed_templates_version": prof.templates_version,
        "required_templates_version": prof.templates_version,
    }
    if "comfy_package_versions" in prof.system_extra:
        system["comfy_package_versions"] = prof.system_extra["comfy_package_versions"]
    system.update(
        {
            "python_version": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
            "pytorch_version": "2.13.0+cpu" if opts.kind == "cpu" else "2.13.0+cu130",
            "embedded_python": False,
        }
    )
    if "deploy_environment" in prof.system_extra:
        system["deploy_environment"] = prof.system_extra["deploy_environment"]
    system["argv"] = list(opts.argv)
    if opts.kind == "cpu":
        devices = [
            {
                "name": "cpu",
                "type": "cpu",
                "index": None,
                "vram_total": ram_total,
                "vram_free": ram_free,
                "torch_vram_total": ram_total,
                "torch_vram_free": ram_free,
            }
        ]
    else:
        count = max(1, opts.count) if prof.all_devices else 1
        devices = [_cuda_device(opts, i, busy) for i in range(count)]
    return {"system": system, "devices": devices}
