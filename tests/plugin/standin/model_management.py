"""Stand-in for comfy.model_management: a fake device whose free memory tests set.

``loaded`` holds the sizes of loaded models; unloading one adds its size to free memory, and
``soft_empty_cache`` returns ``cached`` (reserved but unused) bytes, like the allocator cache.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class CPUState(Enum):
    GPU = 0
    CPU = 1
    MPS = 2


class Device:
    def __init__(self, type: str, index: int | None = 0) -> None:
        self.type = type
        self.index = index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


class InterruptProcessingException(Exception):
    pass


class OOM_EXCEPTION(Exception):  # torch.cuda.OutOfMemoryError in ComfyUI
    pass


OOM_EXCEPTION.__module__, OOM_EXCEPTION.__qualname__ = "torch", "OutOfMemoryError"


cpu_state = CPUState.GPU
state: dict[str, Any] = {"device": Device("cuda", 0), "free": 8 << 30, "loaded": [], "cached": 0}
calls: list[tuple[Any, ...]] = []


def configure(device_type: str = "cuda", free: int = 8 << 30, loaded: list[int] | None = None,
              cached: int = 0) -> None:
    global cpu_state
    cpu_state = CPUState.CPU if device_type == "cpu" else CPUState.GPU
    state.update(device=Device(device_type, None if device_type == "cpu" else 0), free=free,
                 loaded=list(loaded or []), cached=cached)
    calls.clear()


def get_torch_device() -> Device:
    return state["device"]


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> Any:
    calls.append(("get_free_memory", str(dev)))
    return (state["free"], state["cached"]) if torch_free_too else state["free"]


def free_memory(memory_required: float, device: Any, keep_loaded: list[Any] | None = None) -> list[int]:
    calls.append(("free_memory", memory_required, str(device)))
    unloaded = []
    while state["loaded"] and state["free"] <= memory_required:
        size = state["loaded"].pop()
        state["free"] += size
        unloaded.append(size)
    return unloaded


def unload_all_models() -> None:
    calls.append(("unload_all_models",))
    free_memory(1e30, get_torch_device())


def soft_empty_cache(force: bool = False) -> None:
    calls.append(("soft_empty_cache",))
    state["free"] += state["cached"]
    state["cached"] = 0


def throw_exception_if_processing_interrupted() -> None:
    pass
