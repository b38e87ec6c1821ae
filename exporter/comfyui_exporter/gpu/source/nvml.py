"""The NVML layer behind one small interface.

Everything the GPU collector and the XID watcher need from NVML goes through :class:`NvmlLike`, so the
collector can be tested on machines without a GPU: ``fake.FakeNvml`` replays golden captures, and
:class:`PynvmlNvml` is the real implementation on top of nvidia-ml-py (imported as ``pynvml``).

Conventions shared by every implementation, so that a capture recorded from the real one replays
identically through the fake:

* Devices are addressed by NVML index (PCI bus order, the order ``nvidia-smi`` prints).
* Values are returned in NVML's own units: bytes for memory, percent for utilization, degrees C,
  **milliwatts** for power, a bitmask for clock event ("throttle") reasons. Conversion to base units
  happens in the collector, once.
* Failures raise the real ``pynvml.NVMLError`` subclasses (``NVMLError_GpuIsLost``,
  ``NVMLError_NotSupported`` ...), never anything else on purpose.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pynvml

T = TypeVar("T")

# nvmlEventTypeXidCriticalError; the value is part of NVML's ABI.
EVENT_TYPE_XID_CRITICAL_ERROR = 0x0000000000000008

# nvmlClocksEventReason* bits (formerly nvmlClocksThrottleReason*; same values), in the order exported.
CLOCK_EVENT_REASONS: tuple[tuple[str, int], ...] = (
    ("gpu_idle", 0x1),
    ("applications_clocks_setting", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal_slowdown", 0x20),
    ("hw_thermal_slowdown", 0x40),
    ("hw_power_brake_slowdown", 0x80),
    ("display_clock_setting", 0x100),
)

# NVML_ERROR_* code -> short snake-case name ("gpu_is_lost"), built from the installed nvidia-ml-py so new
# codes are picked up; used for the `reason` label and for the capture format.
ERROR_NAMES: dict[int, str] = {
    getattr(pynvml, attr): attr.removeprefix("NVML_ERROR_").lower()
    for attr in dir(pynvml)
    if attr.startswith("NVML_ERROR_") and isinstance(getattr(pynvml, attr), int)
}


class InvalidValue(Exception):
    """An NvmlLike answered with a value of the wrong type or shape."""


def error_reason(exc: BaseException) -> str:
    """Bounded `reason` label value: the NVML error name, "other" (unknown NVML code), "invalid_value"
    (an answer of the wrong type or shape) or "exception" (anything else: a bug)."""
    if isinstance(exc, pynvml.NVMLError):
        return ERROR_NAMES.get(getattr(exc, "value", None), "other")  # type: ignore[arg-type]
    if isinstance(exc, InvalidValue):
        return "invalid_value"
    return "exception"


def nvml_error(name: str) -> pynvml.NVMLError:
    """The real pynvml exception for an error name such as "GPU_IS_LOST" or "gpu_is_lost"."""
    code = getattr(pynvml, "NVML_ERROR_" + name.upper(), None)
    if not isinstance(code, int):
        code = pynvml.NVML_ERROR_UNKNOWN
    return pynvml.NVMLError(code)  # NVMLError.__new__ picks the matching subclass


def is_error(exc: BaseException, code: int) -> bool:
    """True when exc is the NVMLError with this NVML_ERROR_* code."""
    return isinstance(exc, pynvml.NVMLError) and getattr(exc, "value", None) == code


@dataclass(frozen=True)
class MemoryInfo:
    """nvmlMemory_t (v1): bytes. ``used`` includes memory the driver reserves."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class Utilization:
    """nvmlUtilization_t: percent of the last sample period (1/6 s to 1 s, GPU dependent).

    ``memory`` is the memory *controller* busy time, not the share of memory in use.
    """

    gpu: int
    memory: int


@dataclass(frozen=True)
class XidEvent:
    """One nvmlEventTypeXidCriticalError event. index/uuid are None when the device can't be resolved."""

    index: int | None
    uuid: str | None
    xid: int


class NvmlLike(Protocol):
    """What the exporter needs from NVML. Every method may raise a ``pynvml.NVMLError`` subclass."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str: ...
    def cuda_driver_version(self) -> int: ...  # e.g. 12040 for CUDA 12.4
    def device_count(self) -> int: ...
    def uuid(self, index: int) -> str: ...
    def name(self, index: int) -> str: ...
    def pci_bus_id(self, index: int) -> str: ...  # "00000000:3B:00.0"
    def memory_info(self, index: int) -> MemoryInfo: ...
    def utilization_rates(self, index: int) -> Utilization: ...
    def temperature(self, index: int) -> int: ...  # degrees C, GPU core sensor
    def power_usage(self, index: int) -> int: ...  # milliwatts
    def enforced_power_limit(self, index: int) -> int: ...  # milliwatts
    def clocks_event_reasons(self, index: int) -> int: ...  # bitmask, CLOCK_EVENT_REASONS
    def mig_mode(self, index: int) -> tuple[int, int]: ...  # (current, pending), 1 = enabled
    def xid_register(self, index: int) -> None: ...
    def xid_wait(self, timeout_ms: int) -> XidEvent | None: ...  # None on timeout
    def xid_close(self) -> None: ...


# The per-device readers, in the order the collector and the capture script call them. The name is both
# the NvmlLike method and the key in a capture file.
DEVICE_FIELDS: tuple[str, ...] = (
    "uuid",
    "name",
    "pci_bus_id",
    "memory_info",
    "utilization_rates",
    "temperature",
    "power_usage",
    "enforced_power_limit",
    "clocks_event_reasons",
    "mig_mode",
)


def cuda_version_string(version: int) -> str:
    """NVML's CUDA driver version integer (12040) as "12.4" (NVML_CUDA_DRIVER_VERSION_MAJOR/MINOR)."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def _text(value: Any) -> str:
    """Strings as str: nvidia-ml-py 13 decodes char arrays (busId) itself, older releases hand back bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\x00")
    return str(value)


def _address(handle: Any) -> int | None:
    """Pointer value of an nvmlDevice_t, to recognise the device an event belongs to."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return None


class PynvmlNvml:
    """NvmlLike on top of nvidia-ml-py.

    Handles are cached per index for the life of one init (NVML keeps them valid until shutdown); a
    failed handle lookup is not cached, so a transient failure is retried on the next scrape.
    Deprecated entry points are tried first because every current driver has them, with the successor
    as fallback when the library reports it does not have the function (older or newer drivers).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[int, Any] = {}
        self._by_address: dict[int, int] = {}
        self._event_set: Any = None
        self._fallbacks: dict[str, bool] = {}

    # -- lifecycle -------------------------------------------------------------------------------------
    def init(self) -> None:
        with self._lock:
            self._handles.clear()
            self._by_address.clear()
        pynvml.nvmlInit()

    def shutdown(self) -> None:
        with self._lock:
            self._handles.clear()
            self._by_address.clear()
        pynvml.nvmlShutdown()

    # -- system ----------------------------------------------------------------------------------------
    def driver_version(self) -> str:
        return _text(pynvml.nvmlSystemGetDriverVersion())

    def cuda_driver_version(self) -> int:
        return int(pynvml.nvmlSystemGetCudaDriverVersion())

    def device_count(self) -> int:
        return int(pynvml.nvmlDeviceGetCount())

    # -- devices ---------------------------------------------------------------------------------------
    def _handle(self, index: int) -> Any:
        with self._lock:
            handle = self._handles.get(index)
        if handle is None:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            with self._lock:
                self._handles[index] = handle
                address = _address(handle)
                if address is not None:
                    self._by_address[address] = index
        return handle

    def _with_fallback(self, key: str, first: Callable[[], T], second: Callable[[], T]) -> T:
        """Call first(); once it reports NVML_ERROR_FUNCTION_NOT_FOUND, use second() from then on."""
        if not self._fallbacks.get(key):
            try:
                return first()
            except pynvml.NVMLError as exc:
                if not is_error(exc, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                    raise
                self._fallbacks[key] = True
        return second()

    def uuid(self, index: int) -> str:
        return _text(pynvml.nvmlDeviceGetUUID(self._handle(index)))

    def name(self, index: int) -> str:
        return _text(pynvml.nvmlDeviceGetName(self._handle(index)))

    def pci_bus_id(self, index: int) -> str:
        return _text(pynvml.nvmlDeviceGetPciInfo(self._handle(index)).busId)

    def memory_info(self, index: int) -> MemoryInfo:
        mem = pynvml.nvmlDeviceGetMemoryInfo(self._handle(index))
        return MemoryInfo(total=int(mem.total), free=int(mem.free), used=int(mem.used))

    def utilization_rates(self, index: int) -> Utilization:
        util = pynvml.nvmlDeviceGetUtilizationRates(self._handle(index))
        return Utilization(gpu=int(util.gpu), memory=int(util.memory))

    def temperature(self, index: int) -> int:
        handle = self._handle(index)
        return int(
            self._with_fallback(
                "temperature",
                lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                lambda: pynvml.nvmlDeviceGetTemperatureV(handle, pynvml.NVML_TEMPERATURE_GPU),
            )
        )

    def power_usage(self, index: int) -> int:
        return int(pynvml.nvmlDeviceGetPowerUsage(self._handle(index)))

    def enforced_power_limit(self, index: int) -> int:
        return int(pynvml.nvmlDeviceGetEnforcedPowerLimit(self._handle(index)))

    def clocks_event_reasons(self, index: int) -> int:
        handle = self._handle(index)
        return int(
            self._with_fallback(
                "clocks_event_reasons",
                lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle),
                lambda: pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle),  # drivers < 535
            )
        )

    def mig_mode(self, index: int) -> tuple[int, int]:
        current, pending = pynvml.nvmlDeviceGetMigMode(self._handle(index))
        return int(current), int(pending)

    # -- XID events ------------------------------------------------------------------------------------
    def xid_register(self, index: int) -> None:
        if self._event_set is None:
            self._event_set = pynvml.nvmlEventSetCreate()
        pynvml.nvmlDeviceRegisterEvents(self._handle(index), EVENT_TYPE_XID_CRITICAL_ERROR, self._event_set)

    def xid_wait(self, timeout_ms: int) -> XidEvent | None:
        if self._event_set is None:
            return None
        try:
            data = pynvml.nvmlEventSetWait_v2(self._event_set, timeout_ms)
        except pynvml.NVMLError as exc:
            if is_error(exc, pynvml.NVML_ERROR_TIMEOUT):
                return None
            raise
        if not int(data.eventType) & EVENT_TYPE_XID_CRITICAL_ERROR:
            return None
        address = _address(data.device)
        with self._lock:
            index = self._by_address.get(address) if address is not None else None
        if index is None:
            try:
                index = int(pynvml.nvmlDeviceGetIndex(data.device))
            except pynvml.NVMLError:
                index = None
        uuid: str | None
        try:
            uuid = _text(pynvml.nvmlDeviceGetUUID(data.device))
        except pynvml.NVMLError:
            uuid = None
        return XidEvent(index=index, uuid=uuid, xid=int(data.eventData))

    def xid_close(self) -> None:
        event_set, self._event_set = self._event_set, None
        if event_set is not None:
            pynvml.nvmlEventSetFree(event_set)
