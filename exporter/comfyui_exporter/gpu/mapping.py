"""Which NVML GPU each ComfyUI instance runs on, for ``comfyui_device_gpu_info{comfyui,gpu,uuid}``.

ComfyUI's /system_stats names exactly one torch device ("cuda:0 NVIDIA GeForce RTX 4090 :
cudaMallocAsync", its index and vram_total) and its argv. It does NOT expose its environment, so
CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER set by a launcher (docker --gpus, Kubernetes, systemd) are
invisible here. The rules below therefore only claim a mapping when the evidence is unambiguous, and an
explicit ``NAME=URL@GPU-uuid`` override always wins. See docs/gpu.md "Mapping ComfyUI to GPUs".

1. override uuid            -> that GPU (uuid exported even when NVML on this host doesn't know it,
                               e.g. ComfyUI on another host: the uuid still joins dcgm-exporter).
2. not a CUDA device        -> unmapped (cpu, mps, xpu, directml).
3. NVML GPUs whose name equals the torch device name and whose memory fits vram_total:
   none                     -> unmapped (ROCm, a MIG slice, a GPU on another host).
   exactly one              -> that GPU, whatever the ordering or CUDA_VISIBLE_DEVICES.
   several, all GPUs of the host identical
                            -> CUDA ordinal from ``--cuda-device``/``--default-device`` (else the torch
                               index) == NVML index. CUDA's default FASTEST_FIRST order and
                               PCI_BUS_ID order (NVML's) agree when all devices are identical, because
                               ties fall back to PCI order (observed behaviour, not documented by NVIDIA).
   several, mixed host      -> unmapped: FASTEST_FIRST and PCI_BUS_ID disagree, and which one is in
                               effect is not visible.
   ComfyUI 0.38 lists every torch device it can see (``listed``, its own first). Without
   --cuda-device/--default-device that list is the evidence the older versions lack:
   it holds as many CUDA devices as NVML has GPUs (all identical)
                            -> nothing is hidden: the torch index is the CUDA ordinal ("device_list").
   it holds 2+ but fewer   -> CUDA_VISIBLE_DEVICES hides some: the ordinal is unknown, unmapped.
4. Guard: when two or more instances reach the same GPU only through the *assumed* torch index (no
   --cuda-device), they were most likely pinned by an invisible CUDA_VISIBLE_DEVICES, so none of them
   is mapped. A "device_list" mapping is not an assumption and is kept (two ComfyUIs may share a GPU).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .source.read import KnownGpu

# cudaMemGetInfo's total (what ComfyUI reports as vram_total) is a little below NVML's total because
# of driver-reserved memory (RTX 4090: 25393692672 vs 25757220864, 0.986). A MIG slice is far below.
VRAM_MIN_RATIO = 0.80
VRAM_MAX_RATIO = 1.02

# ComfyUI builds its visible list with range(32) for --default-device (main.py).
_DEFAULT_DEVICE_SPAN = 32

_CUDA_NAME = re.compile(r"^cuda:(?P<index>\d+)\s+(?P<gpu>.+?)(?:\s+:\s*\S*)?\s*$")
_LEGACY_CUDA_NAME = re.compile(r"^CUDA\s+(?:cuda:)?(?P<index>\d+):\s+(?P<gpu>.+?)\s*$")


@dataclass(frozen=True)
class ComfyDevice:
    """The device half of one ComfyUI instance's /system_stats, as handed over by the core."""

    instance: str  # value of the `comfyui` label
    name: str | None  # /system_stats devices[0]["name"]
    type: str | None  # devices[0]["type"], e.g. "cuda"
    index: int | None
    vram_total: int | None
    argv: tuple[str, ...]  # system_stats["system"]["argv"]
    override_uuid: str | None  # from NAME=URL@GPU-uuid
    listed: tuple[str, ...] = ()  # every devices[*]["name"]; more than one only on 0.38+


@dataclass(frozen=True)
class GpuMapping:
    """One comfyui_device_gpu_info series; gpu is "" when the override uuid is not on this host."""

    instance: str
    gpu: str
    uuid: str
    method: str  # override | only_model | cuda_ordinal | device_list | assumed_ordinal


@dataclass(frozen=True)
class Unmapped:
    """An instance with no mapping, and why (for the log line)."""

    instance: str
    reason: str


def torch_gpu_name(device_name: str | None) -> tuple[int | None, str | None]:
    """(torch index, GPU name) from ComfyUI's device name; (None, None) when it isn't a CUDA name."""
    if not device_name:
        return None, None
    for pattern in (_CUDA_NAME, _LEGACY_CUDA_NAME):
        match = pattern.match(device_name.strip())
        if match:
            return int(match["index"]), match["gpu"].strip()
    return None, None


def argv_option(argv: Sequence[str], option: str, min_prefix: int) -> str | None:
    """Last value of an argparse option, accepting ``--opt V``, ``--opt=V`` and unambiguous abbreviations
    (argparse's allow_abbrev, on in ComfyUI) of at least min_prefix characters."""
    value: str | None = None
    args = list(argv)
    for pos, arg in enumerate(args):
        if arg == "--":
            break
        flag, eq, inline = arg.partition("=")
        if len(flag) < min_prefix or not option.startswith(flag):
            continue
        if eq:
            value = inline
        elif pos + 1 < len(args):
            value = args[pos + 1]
    return value


def cuda_ordinal(device: ComfyDevice) -> tuple[int | None, bool]:
    """(CUDA ordinal in the unrestricted enumeration, whether argv made it explicit).

    ComfyUI turns ``--cuda-device N`` into CUDA_VISIBLE_DEVICES=N (so torch sees it as cuda:0) and
    ``--default-device D`` into CUDA_VISIBLE_DEVICES=D,0,1,... (D first). The torch index picks within
    that visible list. Without either flag the torch index is taken as the ordinal, an assumption.
    """
    local = device.index
    if local is None:
        local = torch_gpu_name(device.name)[0] or 0
    cuda_device = argv_option(device.argv, "--cuda-device", len("--cuda-d"))
    if cuda_device is not None and cuda_device.strip().lower() != "all":
        try:
            visible = [int(part) for part in cuda_device.split(",") if part.strip()]
        except ValueError:
            return None, True  # e.g. a UUID: not an ordinal we can place
        return (visible[local] if 0 <= local < len(visible) else None), True
    default_device = argv_option(device.argv, "--default-device", len("--default-d"))
    if default_device is not None:
        try:
            first = int(default_device)
        except ValueError:
            return None, True
        visible = [first, *(i for i in range(_DEFAULT_DEVICE_SPAN) if i != first)]
        return (visible[local] if 0 <= local < len(visible) else None), True
    return local, False


def _same_name(a: str | None, b: str | None) -> bool:
    return (
        a is not None and b is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
    )


def _vram_fits(vram_total: int | None, gpu: KnownGpu) -> bool:
    if not vram_total or not gpu.memory_total:
        return True
    return VRAM_MIN_RATIO * gpu.memory_total <= vram_total <= VRAM_MAX_RATIO * gpu.memory_total


def map_device(device: ComfyDevice, gpus: Sequence[KnownGpu]) -> GpuMapping | Unmapped:
    """Apply rules 1-3 of the module docstring to one instance."""
    wanted = (device.override_uuid or "").strip()
    if wanted:
        for gpu in gpus:
            if gpu.uuid.lower() == wanted.lower():
                return GpuMapping(device.instance, str(gpu.index), gpu.uuid, "override")
        return GpuMapping(device.instance, "", wanted, "override")
    _, gpu_name = torch_gpu_name(device.name)
    if (device.type or "").lower() != "cuda" or gpu_name is None:
        return Unmapped(device.instance, f"device {device.name!r} (type {device.type!r}) is not a CUDA GPU")
    candidates = [g for g in gpus if _same_name(g.name, gpu_name) and _vram_fits(device.vram_total, g)]
    if not candidates:
        return Unmapped(
            device.instance,
            f"no NVML GPU here is a {gpu_name!r} with about {device.vram_total} bytes "
            "(other host, MIG slice or non-NVIDIA GPU?); add @GPU-uuid to its --comfyui-url",
        )
    if len(candidates) == 1:
        gpu = candidates[0]
        return GpuMapping(device.instance, str(gpu.index), gpu.uuid, "only_model")
    if not all(_same_name(g.name, gpu_name) for g in gpus):
        return Unmapped(
            device.instance,
            f"{len(candidates)} {gpu_name!r} GPUs in a mixed host: CUDA's FASTEST_FIRST and PCI_BUS_ID "
            "orders disagree and the one in effect is not visible; add @GPU-uuid to its --comfyui-url",
        )
    ordinal, explicit = cuda_ordinal(device)
    method = "cuda_ordinal" if explicit else "assumed_ordinal"
    listed_cuda = [n for n in device.listed if torch_gpu_name(n)[1] is not None]
    if not explicit and len(listed_cuda) >= 2:
        if len(listed_cuda) != len(gpus):
            return Unmapped(
                device.instance,
                f"ComfyUI sees {len(listed_cuda)} of this host's {len(gpus)} GPUs: CUDA_VISIBLE_DEVICES "
                "picks them and is not visible; add --cuda-device N or @GPU-uuid",
            )
        method = "device_list"
    by_index = {g.index: g for g in gpus}
    if ordinal is None or ordinal not in by_index or by_index[ordinal] not in candidates:
        return Unmapped(
            device.instance, f"CUDA ordinal {ordinal} from argv/index matches no {gpu_name!r} GPU"
        )
    gpu = by_index[ordinal]
    return GpuMapping(device.instance, str(gpu.index), gpu.uuid, method)


def map_devices(devices: Iterable[ComfyDevice], gpus: Sequence[KnownGpu]) -> list[GpuMapping | Unmapped]:
    """Map every instance, then apply the collision guard (rule 4) to assumed ordinals."""
    results = [map_device(device, gpus) for device in devices]
    assumed: dict[str, list[int]] = defaultdict(list)
    for pos, result in enumerate(results):
        if isinstance(result, GpuMapping) and result.method == "assumed_ordinal":
            assumed[result.uuid].append(pos)
    for uuid, positions in assumed.items():
        if len(positions) > 1:
            names = ", ".join(results[p].instance for p in positions)
            for pos in positions:
                results[pos] = Unmapped(
                    results[pos].instance,
                    f"instances {names} would all map to {uuid} only through the assumed torch index; "
                    "CUDA_VISIBLE_DEVICES is probably set for them: add --cuda-device N or @GPU-uuid",
                )
    return results
