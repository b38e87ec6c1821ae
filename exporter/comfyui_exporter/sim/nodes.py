"""Node classes the simulator knows: their inputs (with ComfyUI's input_config dicts) and outputs.

The ``input_config`` values are echoed verbatim in validation errors, so they are taken from the
recordings (EmptyImage, FaultInjection, SaveImage, CheckpointLoaderSimple) or from ComfyUI's
node definitions for the default txt2img graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAULT_MODES = [
    "pass",
    "oom",
    "file_not_found",
    "runtime_error",
    "value_error",
    "sleep",
    "block",
    "cuda_error",
    "model_load_error",
    "interrupt",
]
SAMPLERS = [
    "euler",
    "euler_cfg_pp",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_sde",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "ddpm",
    "lcm",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
]
SCHEDULERS = [
    "simple",
    "sgm_uniform",
    "karras",
    "exponential",
    "ddim_uniform",
    "beta",
    "normal",
    "linear_quadratic",
    "kl_optimal",
]


@dataclass
class NodeClass:
    """Static description of a node type: inputs (ordered), outputs, whether it is an output node."""

    name: str
    required: dict[str, tuple[Any, dict[str, Any]]]
    optional: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    return_types: tuple[str, ...] = ()
    output_node: bool = False
    unique_id_input: bool = False  # has the hidden ``unique_id`` input (shows in current_inputs)

    def input_info(self, name: str) -> tuple[Any, str, dict[str, Any]]:
        if name in self.required:
            typ, extra = self.required[name]
            return typ, "required", extra
        typ, extra = self.optional[name]
        return typ, "optional", extra


def _int(default: int, lo: int, hi: int, **kw: Any) -> tuple[str, dict[str, Any]]:
    return "INT", {"default": default, "min": lo, "max": hi, "step": 1, **kw}


def build_node_classes(checkpoints: list[str]) -> dict[str, NodeClass]:
    """Return the node registry; ``checkpoints`` is the (usually empty) list of installed models."""
    img_tip = {"tooltip": "The images to save."}
    classes = [
        NodeClass(
            "EmptyImage",
            {
                "width": _int(512, 1, 16384),
                "height": _int(512, 1, 16384),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"}),
            },
            return_types=("IMAGE",),
        ),
        NodeClass(
            "FaultInjection",
            {
                "mode": (list(FAULT_MODES), {"default": "pass"}),
                "seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 0.1}),
                "steps": ("INT", {"default": 1, "min": 0, "max": 10000}),
                "salt": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
            },
            # Optional: the 0.3.64 server ran prompts without them (see its recorded history).
            optional={
                "emit_preview": ("BOOLEAN", {"default": False}),
                "emit_text": ("BOOLEAN", {"default": False}),
                "image": ("IMAGE", {}),
            },
            return_types=("IMAGE",),
            unique_id_input=True,
        ),
        NodeClass(
            "SaveImage",
            {
                "images": ("IMAGE", img_tip),
                "filename_prefix": (
                    "STRING",
                    {
                        "default": "ComfyUI",
                        "tooltip": "The prefix for the file to "
                        "save. This may include formatting information such as "
                        "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include "
                        "values from nodes.",
                    },
                ),
            },
            output_node=True,
        ),
        NodeClass("PreviewImage", {"images": ("IMAGE", {})}, output_node=True),
        NodeClass(
            "CheckpointLoaderSimple",
            {
                "ckpt_name": (list(checkpoints), {"tooltip": "The name of the checkpoint (model) to load."}),
            },
            return_types=("MODEL", "CLIP", "VAE"),
        ),
        NodeClass(
            "EmptyLatentImage",
            {
                "width": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                "height": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            },
            return_types=("LATENT",),
        ),
        NodeClass(
            "CLIPTextEncode",
            {
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "clip": ("CLIP", {}),
            },
            return_types=("CONDITIONING",),
        ),
        NodeClass(
            "KSampler",
            {
                "model": ("MODEL", {}),
                "seed": (
                    "INT",
                    {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True},
                ),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
                "sampler_name": (list(SAMPLERS), {}),
                "scheduler": (list(SCHEDULERS), {}),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "latent_image": ("LATENT", {}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            },
            return_types=("LATENT",),
        ),
        NodeClass("VAEDecode", {"samples": ("LATENT", {}), "vae": ("VAE", {})}, return_types=("IMAGE",)),
    ]
    return {c.name: c for c in classes}
