"""Failure classification: one ordered, data-driven table of rules.

The ``error_type`` label is what alerts route on (an OOM pages, a missing model goes to chat), so
the classes are few and fixed. A rule matches on the exception's type name, its message, or both;
the first matching rule wins, which is why OOM comes before the broader CUDA rule ("CUDA out of
memory" is an OOM, not a driver fault) and model-loading rules come before CUDA (a size mismatch is
raised as ``RuntimeError`` like everything else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .events import ErrorType


@dataclass(frozen=True, slots=True)
class Rule:
    error_type: ErrorType
    exception_type: re.Pattern[str] | None = None
    message: re.Pattern[str] | None = None
    why: str = ""

    def matches(self, exception_type: str, message: str) -> bool:
        if self.exception_type is not None and self.exception_type.search(exception_type):
            return True
        return self.message is not None and self.message.search(message) is not None


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


RULES: tuple[Rule, ...] = (
    Rule(
        ErrorType.OOM,
        exception_type=_rx(r"(^|\.)(OutOfMemoryError|MemoryError)$"),
        message=_rx(
            r"\b(CUDA|HIP|MPS backend|XPU)\b.{0,40}\bout of memory"
            r"|\bout of memory\b|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
            r"|would exceed allowed memory|Allocation on device"
        ),
        why="torch.OutOfMemoryError (== torch.cuda.OutOfMemoryError), host MemoryError, backend OOM texts",
    ),
    Rule(
        ErrorType.MODEL_NOT_FOUND,
        exception_type=_rx(r"(^|\.)FileNotFoundError$"),
        message=_rx(
            r"\b(model|checkpoint|lora|vae|clip|controlnet|unet|upscale)[^\n]{0,80}"
            r"\b(not found|does not exist|missing)\b"
            r"|\bcould not find (the )?(model|checkpoint|file)"
        ),
        why="FileNotFoundError for model paths, and loaders that say a model file is missing",
    ),
    Rule(
        ErrorType.MODEL_LOAD_ERROR,
        exception_type=_rx(r"SafetensorError$|(^|\.)UnpicklingError$"),
        message=_rx(
            r"Error\(s\) in loading state_dict|size mismatch for|HeaderTooLarge|MetadataIncompleteBuffer"
            r"|invalid load key|PytorchStreamReader failed|could not detect model type"
            r"|unsupported (checkpoint|model)|Error while deserializing header|not a valid (model|checkpoint)"
        ),
        why="corrupt, truncated or unrecognised model files, architecture/size mismatches",
    ),
    Rule(
        ErrorType.CUDA_ERROR,
        exception_type=_rx(r"(^|\.)(AcceleratorError|CudaError)$"),
        message=_rx(
            r"\bCUDA error\b|\bHIP error\b|\bcuDNN error\b|CUDNN_STATUS_|CUBLAS_STATUS_|CUFFT_|"
            r"illegal memory access|device-side assert|no kernel image is available|"
            r"CUDA driver|unspecified launch failure|\bNCCL error\b|misaligned address"
        ),
        why="driver/kernel faults: the process is often poisoned afterwards",
    ),
)


def classify(exception_type: str | None, message: str | None) -> ErrorType:
    """Map a ComfyUI ``execution_error`` to its bounded ``error_type``; unknowns are node exceptions."""
    exc = exception_type or ""
    msg = message or ""
    for rule in RULES:
        if rule.matches(exc, msg):
            return rule.error_type
    return ErrorType.NODE_EXCEPTION
