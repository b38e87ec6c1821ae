"""GPU metrics from NVML, mapped to the ComfyUI instance that uses each GPU. See docs/gpu.md."""

from .collector import GpuCollector, build_gpu_collector
from .mapping import ComfyDevice
from .source.nvml import NvmlLike

__all__ = ["ComfyDevice", "GpuCollector", "NvmlLike", "build_gpu_collector"]
