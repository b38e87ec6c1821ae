"""The classifier against every error in the recordings plus synthetic messages of each class."""

from __future__ import annotations

import pytest

from comfyui_exporter.model.classify import classify
from comfyui_exporter.model.events import ErrorType
from tests.support.recordings import VERSIONS, case_names, history_items

# What the contract says each recorded exception must be.
RECORDED = {
    "torch.OutOfMemoryError": ErrorType.OOM,
    "FileNotFoundError": ErrorType.MODEL_NOT_FOUND,
    "RuntimeError": ErrorType.NODE_EXCEPTION,
    "ValueError": ErrorType.NODE_EXCEPTION,
}


def _recorded_errors() -> list[tuple[str, str, str]]:
    out = {}
    for case, version in [(c, v) for v in VERSIONS for c in case_names(v)]:
        for item in history_items(case, version).values():
            for kind, data in item["status"]["messages"]:
                if kind == "execution_error":
                    out[(data["exception_type"], data["exception_message"])] = case
    return [(case, exc, msg) for (exc, msg), case in sorted(out.items())]


RECORDED_ERRORS = _recorded_errors()


def test_recordings_contain_every_kind_of_error() -> None:
    assert {exc for _, exc, _ in RECORDED_ERRORS} == set(RECORDED)


@pytest.mark.parametrize(("case", "exception_type", "message"), RECORDED_ERRORS)
def test_recorded_errors(case: str, exception_type: str, message: str) -> None:
    assert classify(exception_type, message) is RECORDED[exception_type]


SYNTHETIC = [
    ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 20.00 MiB", ErrorType.OOM),
    ("torch.cuda.OutOfMemoryError", "whatever", ErrorType.OOM),
    ("RuntimeError", "HIP out of memory. Tried to allocate 1.5 GiB", ErrorType.OOM),
    ("RuntimeError", "MPS backend out of memory (MPS allocated: 17.00 GB)", ErrorType.OOM),
    (
        "RuntimeError",
        "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
        ErrorType.OOM,
    ),
    ("MemoryError", "", ErrorType.OOM),
    ("RuntimeError", "Allocation on device 0 would exceed allowed memory. (out of memory)", ErrorType.OOM),
    ("RuntimeError", "CUDA error: an illegal memory access was encountered", ErrorType.CUDA_ERROR),
    ("RuntimeError", "CUDA error: device-side assert triggered", ErrorType.CUDA_ERROR),
    ("RuntimeError", "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED", ErrorType.CUDA_ERROR),
    ("RuntimeError", "CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx", ErrorType.CUDA_ERROR),
    ("torch.AcceleratorError", "CUDA error: unspecified launch failure", ErrorType.CUDA_ERROR),
    # 0.38's is_oom() also treats an AcceleratorError saying "out of memory" as an OOM (and
    # appends the OOM tips): it must page as oom, not as a driver fault.
    (
        "torch.AcceleratorError",
        "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some "
        "other API call\nThis error means you ran out of memory on your GPU.\n\nTIPS: If the "
        "workflow worked before you might have accidentally set the batch_size to a large number.",
        ErrorType.OOM,
    ),
    (
        "RuntimeError",
        "CUDA error: no kernel image is available for execution on the device",
        ErrorType.CUDA_ERROR,
    ),
    (
        "FileNotFoundError",
        "[Errno 2] No such file or directory: 'models/loras/x.safetensors'",
        ErrorType.MODEL_NOT_FOUND,
    ),
    (
        "Exception",
        "Model in folder 'checkpoints' with filename 'x.ckpt' not found.",
        ErrorType.MODEL_NOT_FOUND,
    ),
    (
        "RuntimeError",
        "Error(s) in loading state_dict for UNet:\n\tsize mismatch for in.weight",
        ErrorType.MODEL_LOAD_ERROR,
    ),
    (
        "safetensors_rust.SafetensorError",
        "Error while deserializing header: HeaderTooLarge",
        ErrorType.MODEL_LOAD_ERROR,
    ),
    ("_pickle.UnpicklingError", "invalid load key, '<'.", ErrorType.MODEL_LOAD_ERROR),
    (
        "RuntimeError",
        "ERROR: Could not detect model type of: /models/checkpoints/x.safetensors",
        ErrorType.MODEL_LOAD_ERROR,
    ),
    (
        "RuntimeError",
        "PytorchStreamReader failed reading zip archive: failed finding central directory",
        ErrorType.MODEL_LOAD_ERROR,
    ),
    ("ValueError", "fault injection: invalid value", ErrorType.NODE_EXCEPTION),
    ("KeyError", "'model'", ErrorType.NODE_EXCEPTION),
    (None, None, ErrorType.NODE_EXCEPTION),
    ("RuntimeError", "Expected all tensors to be on the same device", ErrorType.NODE_EXCEPTION),
]


@pytest.mark.parametrize(("exception_type", "message", "expected"), SYNTHETIC)
def test_synthetic_messages(exception_type: str | None, message: str | None, expected: ErrorType) -> None:
    assert classify(exception_type, message) is expected
