"""Golden scenarios: a capture, the ComfyUI devices the core would hand over, and how many steps to run.

Each step is one scrape; before every step but the first the fake moves to the next capture sample, and
before every scrape the XID events of the current sample are delivered. Step k of scenario S is compared
with golden/S.k.prom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comfyui_exporter.gpu.mapping import ComfyDevice

from .support import load

MAIN = ("main.py", "--listen", "127.0.0.1")
H100 = "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync"
A100 = "cuda:0 NVIDIA A100-SXM4-80GB : cudaMallocAsync"
RTX4090 = "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync"


def cuda(
    instance: str, name: str, vram: int, argv: tuple[str, ...] = (), override: str | None = None
) -> ComfyDevice:
    """A ComfyUI on a CUDA device as /system_stats describes it (torch index 0)."""
    return ComfyDevice(instance, name, "cuda", 0, vram, (*MAIN, *argv), override)


def cpu(instance: str, ram: int) -> ComfyDevice:
    return ComfyDevice(instance, "cpu", "cpu", None, ram, (*MAIN, "--cpu"), None)


def _uuid(fixture: str, index: int) -> str:
    return load(fixture)["samples"][0]["devices"][index]["uuid"]


@dataclass(frozen=True)
class Scenario:
    fixture: str
    devices: tuple[ComfyDevice, ...]
    steps: int
    expected_gpus: int | None = None
    notes: str = field(default="", compare=False)


SCENARIOS: dict[str, Scenario] = {
    "consumer_rtx4090": Scenario(
        "consumer_rtx4090",
        (cuda("desktop", RTX4090, 25393692672),),
        steps=2,
        notes="one GPU: mapped by model; busy at the power cap, then idle",
    ),
    "server_8x_h100": Scenario(
        "server_8x_h100",
        (
            *(
                cuda(f"h100-{i}", H100, 84929593344, ("--port", str(8188 + i), "--cuda-device", str(i)))
                for i in range(8)
            ),
            # ComfyUI on another host, pinned by the operator: exported with gpu="" and its uuid.
            cuda("remote", H100, 84929593344, override="GPU-00000000-1111-4222-8333-444444444444"),
            # Pinned to a local GPU, spelled in upper case: NVML's spelling and index are exported.
            cuda("pinned", H100, 84929593344, override=_uuid("server_8x_h100", 6).upper()),
        ),
        steps=1,
        expected_gpus=8,
        notes="8 identical GPUs, one ComfyUI per GPU via --cuda-device N, plus two overrides",
    ),
    "gpu_lost_midrun": Scenario(
        "gpu_lost_midrun",
        tuple(cuda(f"a100-{i}", A100, 85097971712, (f"--cuda-device={i}",)) for i in range(4)),
        steps=3,
        notes="GPU 2 lost at sample 1 (XID 79), handle lookup fails at sample 2",
    ),
    "xid_events": Scenario(
        "xid_events",
        (
            # No --cuda-device: torch index 0 is assumed to be CUDA ordinal 0 (only one instance assumes).
            cuda("l40s-a", "cuda:0 NVIDIA L40S : cudaMallocAsync", 47697362944),
            # --default-device 1 puts GPU 1 first in CUDA_VISIBLE_DEVICES.
            cuda("l40s-b", "cuda:0 NVIDIA L40S : native", 47697362944, ("--default-device", "1")),
        ),
        steps=2,
        notes="XID 13 (application) and XID 94 (contained ECC), counters and timestamps",
    ),
    "mig_and_unsupported": Scenario(
        "mig_and_unsupported",
        (
            cuda("mig-slice", "cuda:0 NVIDIA A100 80GB PCIe MIG 3g.40gb : cudaMallocAsync", 42278584320),
            cuda("pascal", "cuda:0 NVIDIA GeForce GTX 1050 Ti : native", 4236312576),
            cpu("cpu-only", 33467027456),
        ),
        steps=2,
        notes="MIG: no device utilization; GTX 1050 Ti: no power; a transient UNKNOWN temperature",
    ),
    "no_nvml_cpu_host": Scenario(
        "no_nvml_cpu_host",
        (
            cpu("cpu-only", 25276510208),
            cuda("remote-gpu", RTX4090, 25393692672, override="GPU-5f0c8a2e-3b1d-4c7e-9a6f-1d2e3c4b5a69"),
        ),
        steps=2,
        notes="real capture from a host without libnvidia-ml: nvml_up 0, only the override mapping",
    ),
}
