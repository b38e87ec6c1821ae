"""``execution_error`` payloads per failure kind, as ComfyUI 0.8.0 builds them.

Each fault mode of the FaultInjection node maps to one exception (type name, ``str(ex)``, the
source line that raised it). The payload layout, the trailing ``"\\n"`` after the message, the
OOM tips and the recorder-redacted traceback frames are copied from the recordings so the
exporter's classifier sees exactly what a real server sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OOM_TIPS = (
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before "
    "you might have accidentally set the batch_size to a large number."
)

_OMITTED = "    <source line omitted by recorder>\n"
Frame = tuple[str, int, str]
# ComfyUI 0.8.0's frames above the node; other versions pass their own (sim/versions.py).
_EXEC_FRAMES: tuple[Frame, ...] = (
    ("/opt/ComfyUI/execution.py", 518, "execute"),
    ("/opt/ComfyUI/execution.py", 329, "get_output_data"),
    ("/opt/ComfyUI/execution.py", 303, "_async_map_node_over_list"),
    ("/opt/ComfyUI/execution.py", 291, "process_inputs"),
)


@dataclass(frozen=True)
class Fault:
    """One simulated exception: what ComfyUI would report for it."""

    exception_type: str
    message: str  # str(ex)
    line: int  # line in the custom node that raised it
    extra_frames: tuple[tuple[str, int, str], ...] = ()
    oom: bool = False


FAULTS: dict[str, Fault] = {
    "oom": Fault(
        "torch.OutOfMemoryError",
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of "
        "which 1.12 GiB is free. Of the allocated memory 20.10 GiB is allocated by PyTorch, and "
        "1.50 GiB is reserved by PyTorch but unallocated. (fault injection)",
        69,
        oom=True,
    ),
    "file_not_found": Fault(
        "FileNotFoundError",
        "[Errno 2] No such file or directory: "
        "'/models/checkpoints/fault_injection_missing_model.safetensors'",
        75,
    ),
    "runtime_error": Fault("RuntimeError", "fault injection: generic runtime failure in node", 79),
    "value_error": Fault("ValueError", "fault injection: invalid value for parameter 'strength': -1.0", 81),
    # Not recorded (the recording box had no GPU): what torch >= 2.8 raises for a device fault.
    "cuda_error": Fault(
        "torch.AcceleratorError",
        "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be "
        "asynchronously reported at some other API call, so the stacktrace below might be "
        "incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\nCompile with "
        "`TORCH_USE_CUDA_DSA` to enable device-side assertions.\n",
        85,
    ),
    # Not recorded: a truncated/corrupt .safetensors file as comfy.utils.load_torch_file reports it.
    "model_load_error": Fault(
        "safetensors_rust.SafetensorError",
        "Error while deserializing header: HeaderTooLarge",
        89,
        extra_frames=(("/opt/ComfyUI/comfy/utils.py", 70, "load_torch_file"),),
    ),
}

# Ground-truth error_type names (docs/development.md /_sim/outcomes) per fault mode.
ERROR_TYPE_OF_MODE = {
    "oom": "oom",
    "cuda_error": "cuda_error",
    "file_not_found": "model_not_found",
    "model_load_error": "model_load_error",
    "runtime_error": "node_exception",
    "value_error": "node_exception",
}


def traceback_frames(fault: Fault, exec_frames: tuple[Frame, ...] = _EXEC_FRAMES) -> list[str]:
    """The formatted, redacted frames ComfyUI stores in ``traceback``."""
    frames = [
        *exec_frames,
        ("/opt/ComfyUI/custom_nodes/fault_injection/__init__.py", fault.line, "run"),
        *fault.extra_frames,
    ]
    return [f'  File "{path}", line {line}, in {func}\n{_OMITTED}' for path, line, func in frames]


def log_traceback(fault: Fault, exec_frames: tuple[Frame, ...] = _EXEC_FRAMES) -> str:
    """The traceback block ComfyUI logs for a node exception (what ``logs`` subscribers see)."""
    frames = "".join(traceback_frames(fault, exec_frames))
    return f"Traceback (most recent call last):\n{frames}{fault.exception_type}: {fault.message}\n\n"


def exception_message(fault: Fault) -> str:
    """``str(ex)`` plus ComfyUI's suffix: OOM tips, otherwise just a newline."""
    if fault.oom:
        return f"{fault.message}\n{OOM_TIPS}"
    return f"{fault.message}\n"


def tensor_repr(batch: int = 1) -> str:
    """``str(tensor)`` of a small all-zero image batch, as torch prints a summarized 4-D tensor."""
    row = "[0., 0., 0.]"
    inner_pad = " " * 10
    block = (
        f"[{row},\n{inner_pad}{row},\n{inner_pad}{row},\n{inner_pad}...,\n"
        f"{inner_pad}{row},\n{inner_pad}{row},\n{inner_pad}{row}]"
    )
    mid_pad = " " * 9
    blocks = [block] * 3 + ["..."] + [block] * 3
    body = f",\n\n{mid_pad}".join(blocks)
    one = f"[{body}]"
    return "tensor([" + ",\n\n\n        ".join([one] * max(1, min(batch, 1))) + "])"


def format_value(value: Any) -> Any:
    """ComfyUI's ``format_value``: plain JSON scalars stay, everything else is ``str()``-ed."""
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return str(value)


def current_inputs(
    node_inputs: dict[str, Any], linked_values: dict[str, Any], node_id: str, has_unique_id: bool
) -> dict[str, list[Any]]:
    """Inputs of the failing node as ``{name: [value]}``; links resolved to their (stringified) outputs."""
    out: dict[str, list[Any]] = {}
    for name, val in node_inputs.items():
        if isinstance(val, list) and len(val) == 2:
            out[name] = [format_value(linked_values.get(name, tensor_repr()))]
        else:
            out[name] = [format_value(val)]
    if has_unique_id:
        out["unique_id"] = [node_id]
    return out


def execution_error(
    prompt_id: str,
    node_id: str,
    node_type: str,
    executed: list[str],
    mode: str,
    inputs: dict[str, list[Any]],
    cached_ids: list[str],
    exec_frames: tuple[Frame, ...] = _EXEC_FRAMES,
) -> dict[str, Any]:
    """The ``execution_error`` data (without timestamp; ``add_message`` stamps it)."""
    fault = FAULTS[mode]
    return {
        "prompt_id": prompt_id,
        "node_id": node_id,
        "node_type": node_type,
        "executed": list(executed),
        "exception_message": exception_message(fault),
        "exception_type": fault.exception_type,
        "traceback": traceback_frames(fault, exec_frames),
        "current_inputs": inputs,
        "current_outputs": list(cached_ids),
    }


def blocked_error(
    prompt_id: str, node_id: str, node_type: str, executed: list[str], message: str
) -> dict[str, Any]:
    """The ExecutionBlocked error frame: sent directly, no timestamp, never stored in history."""
    return {
        "prompt_id": prompt_id,
        "node_id": node_id,
        "node_type": node_type,
        "executed": list(executed),
        "exception_message": f"Execution Blocked: {message}",
        "exception_type": "ExecutionBlocked",
        "traceback": [],
        "current_inputs": [],
        "current_outputs": [],
    }


def interrupted(prompt_id: str, node_id: str, node_type: str, executed: list[str]) -> dict[str, Any]:
    """The ``execution_interrupted`` data (without timestamp)."""
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed)}
