"""The "Health Check: VRAM" node: a pass-through that checks free device memory first.

Placed on the link into a heavy node (MODEL -> guard -> KSampler), it runs right before that node
and compares ComfyUI's own idea of free memory (``comfy.model_management.get_free_memory``: driver
free plus what torch has reserved but not used, on CUDA and ROCm alike) with a threshold:

- warn: records a trip (tap event, /status entry, log line) and lets the prompt continue;
- free: asks ComfyUI to unload models (``free_memory(required, device)``, the call it makes itself
  before loading a model, least recently used first) and empty the allocator cache, checks again
  and records whether that was enough;
- fail: records a trip and raises ``VRAMGuardError`` naming free and required memory, so the prompt
  fails with a clear message before the heavy node dies with a CUDA OOM halfway through.

On a CPU-only ComfyUI there is no VRAM: the node passes through and logs a note once.
The node always re-runs (IS_CHANGED is NaN): a cached guard would skip the check while the heavy
node after it runs again. The price is that nodes after the guard are not served from cache.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from . import tap as tap_module

log = logging.getLogger("comfyui_exporter_plugin")
MB = 1024 * 1024
ACTIONS = ("warn", "free", "fail")


class AnyType(str):
    """ComfyUI's wildcard type "*", also equal to every other type name (the pre-union idiom)."""

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")


class VRAMGuardError(RuntimeError):
    """Raised by action=fail; ComfyUI reports it as exception_type comfyui_exporter_plugin.VRAMGuardError."""


VRAMGuardError.__module__ = "comfyui_exporter_plugin"  # stable exception_type whatever the folder name


def _mm() -> Any:
    """comfy.model_management as ComfyUI imported it (never imported by us: no torch outside ComfyUI)."""
    return sys.modules.get("comfy.model_management")


def _gib(n: float) -> str:
    return f"{n / (1024**3):.2f} GiB"


def _context() -> tuple[str | None, str | None]:
    """(prompt_id, node_id) of the running node from ComfyUI's executing context, if available."""
    utils = sys.modules.get("comfy_execution.utils")
    try:
        ctx = utils.get_executing_context() if utils is not None else None
        if ctx is not None:
            return str(ctx.prompt_id), str(ctx.node_id)
    except Exception:
        pass
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    return getattr(instance, "last_prompt_id", None), None


class VRAMGuard:
    """ComfyUI node class (V1 API: INPUT_TYPES / RETURN_TYPES / FUNCTION)."""

    CATEGORY = "utils/health"
    DESCRIPTION = "Passes its input through unchanged after checking that enough VRAM is free."
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "check"
    _cpu_noted = False

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # ComfyUI's name
        return {
            "required": {
                "value": (ANY, {"tooltip": "Anything; passed through unchanged."}),
                "threshold_mb": (
                    "INT",
                    {
                        "default": 2048,
                        "min": 0,
                        "max": 1 << 22,
                        "step": 64,
                        "tooltip": "Free VRAM (MB) the next node needs.",
                    },
                ),
                "action": (list(ACTIONS), {"default": "warn"}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **_kwargs: Any) -> float:  # ComfyUI's name
        return float("nan")

    def check(self, value: Any, threshold_mb: int, action: str) -> tuple[Any]:
        """Returns ``(value,)``; may free memory (free) or raise VRAMGuardError (fail)."""
        run_check(int(threshold_mb) * MB, action)
        return (value,)


def run_check(required: int, action: str) -> dict[str, Any] | None:
    """The check itself; returns the trip record (None when fine or not applicable)."""
    tap = tap_module.current()
    mm = _mm()
    if action not in ACTIONS:
        raise ValueError(f"VRAM guard: unknown action {action!r} (use one of {', '.join(ACTIONS)})")
    if mm is None or not callable(getattr(mm, "get_free_memory", None)):
        _note_once("comfy.model_management.get_free_memory is not available; VRAM guard does nothing")
        return None
    device = mm.get_torch_device()
    if getattr(device, "type", None) == "cpu":
        _note_once("ComfyUI runs on the CPU: there is no VRAM to guard, the node only passes through")
        return None
    if tap is not None:
        tap.guard_checks += 1
    free = int(mm.get_free_memory(device))
    if free >= required:
        return None
    trip: dict[str, Any] = {
        "action": action,
        "free_bytes": free,
        "required_bytes": required,
        "free_after_bytes": None,
        "device": str(device),
    }
    trip["prompt_id"], trip["node_id"] = _context()
    if action == "free":
        _free(mm, required, device)
        trip["free_after_bytes"] = after = int(mm.get_free_memory(device))
        trip["outcome"] = "recovered" if after >= required else "insufficient"
        trip["message"] = (
            f"VRAM guard: {_gib(free)} free on {device} < {_gib(required)} required; "
            f"after unloading models {_gib(after)} free ({trip['outcome']})"
        )
    else:
        trip["outcome"] = "warned" if action == "warn" else "failed"
        trip["message"] = f"VRAM guard: {_gib(free)} free on {device}, {_gib(required)} required"
    log.warning("%s", trip["message"])
    if tap is not None:
        tap.record_trip(dict(trip))
    if action == "fail":
        raise VRAMGuardError(
            f"{trip['message']}; stopping before the next node runs out of memory "
            "(free memory or lower the guard's threshold_mb)."
        )
    return trip


def _free(mm: Any, required: int, device: Any) -> None:
    """Unload models until ``required`` is free (all of them if free_memory is missing), empty caches."""
    if callable(getattr(mm, "free_memory", None)):
        mm.free_memory(required, device)
    elif callable(getattr(mm, "unload_all_models", None)):
        mm.unload_all_models()
    if callable(getattr(mm, "soft_empty_cache", None)):
        mm.soft_empty_cache()


def _note_once(text: str) -> None:
    if not VRAMGuard._cpu_noted:
        VRAMGuard._cpu_noted = True
        log.info("comfyui-exporter plugin: %s", text)


NODE_CLASS_MAPPINGS = {"ComfyUIExporterVRAMGuard": VRAMGuard}
NODE_DISPLAY_NAME_MAPPINGS = {"ComfyUIExporterVRAMGuard": "Health Check: VRAM"}
