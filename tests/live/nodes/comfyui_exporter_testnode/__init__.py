"""A ComfyUI custom node that fails on demand, for the live suite and the real-ComfyUI bench.

Copy (or link) this folder into ``ComfyUI/custom_nodes/`` (``real-comfyui.sh`` does it with
``CUSTOM_NODES=tests/live/nodes/comfyui_exporter_testnode``). It is one output node, so a prompt of
that single node is valid on any ComfyUI without model files: the live suite can produce every
outcome the exporter classifies (success, each ``error_type``, interrupted) on a CPU-only host.

The exceptions are the kinds real nodes raise (torch's OOM class, RuntimeError texts of CUDA and
state_dict failures, FileNotFoundError for a model path), so ComfyUI records them in history exactly
as it would a real failure. Nothing here imports ComfyUI at module level: it is loaded by ComfyUI,
and ``comfy.model_management`` is looked up in ``sys.modules`` when an interruptible sleep needs it.
"""

from __future__ import annotations

import sys
import time

MODES = (
    "success",
    "oom",
    "cuda_error",
    "model_not_found",
    "model_load_error",
    "node_exception",
    "sleep",
)


def _raise_for(mode: str, tag: str) -> None:
    """Raises the failure ``mode`` stands for; ``tag`` ends up in the message (to find it in history)."""
    if mode == "oom":
        import torch

        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate 2.00 GiB (exporter test node, {tag})"
        )
    if mode == "cuda_error":
        raise RuntimeError(f"CUDA error: an illegal memory access was encountered (test node, {tag})")
    if mode == "model_not_found":
        raise FileNotFoundError(f"model file not found: models/checkpoints/missing-{tag}.safetensors")
    if mode == "model_load_error":
        raise RuntimeError(f"Error(s) in loading state_dict for UNetModel: size mismatch for {tag}")
    if mode == "node_exception":
        raise ValueError(f"exporter test node failed on purpose ({tag})")


def _sleep(seconds: float) -> None:
    """Sleeps in small steps and honours ComfyUI's interrupt flag, like a sampler loop does."""
    mm = sys.modules.get("comfy.model_management")
    check = getattr(mm, "throw_exception_if_processing_interrupted", None)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check is not None:
            check()
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


class ComfyUIExporterTestOutcome:
    """Output node: waits ``seconds`` (interruptible), then succeeds or raises the chosen failure."""

    CATEGORY = "testing/comfyui-exporter"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # ComfyUI's name
        return {
            "required": {
                "mode": (list(MODES), {"default": "success"}),
                "seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.01}),
                "tag": ("STRING", {"default": ""}),
            }
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs: object) -> float:  # ComfyUI's name
        return float("nan")  # never served from ComfyUI's cache: every prompt really runs

    def run(self, mode: str, seconds: float, tag: str) -> dict:
        if seconds > 0:
            _sleep(seconds)
        _raise_for(mode, tag or "-")
        return {"ui": {"text": [f"{mode} {tag}"]}}


NODE_CLASS_MAPPINGS = {"ComfyUIExporterTestOutcome": ComfyUIExporterTestOutcome}
NODE_DISPLAY_NAME_MAPPINGS = {"ComfyUIExporterTestOutcome": "Exporter test: outcome on demand"}
