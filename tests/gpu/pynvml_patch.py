"""Monkeypatch nvidia-ml-py's functions so PynvmlNvml runs against a capture sample.

The replacements return what nvidia-ml-py really returns (str for decorated string getters, ctypes
structures such as nvmlPciInfo_t, whose __getattribute__ decodes busId, lists for MIG mode,
c_nvmlEventData_t for events) and raise the real NVMLError subclasses, so PynvmlNvml's conversions are
what is tested.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from typing import Any

import pynvml
import pytest

from comfyui_exporter.gpu.source.nvml import nvml_error

BASE = 0x1000


def handle(index: int) -> Any:
    return ctypes.cast(ctypes.c_void_p(BASE + index), pynvml.c_nvmlDevice_t)


def index_of(h: Any) -> int:
    return int(ctypes.cast(h, ctypes.c_void_p).value) - BASE


class PynvmlFromCapture:
    def __init__(self, capture: dict[str, Any], sample: int = 0) -> None:
        self.capture = capture
        self.sample = capture["samples"][sample] if capture["samples"] else {"device_count": 0, "devices": []}
        self.events = list(capture.get("xid", {}).get("events", []))
        self.calls: Counter[str] = Counter()
        self.registered: list[tuple[int, int]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> PynvmlFromCapture:
        for name in dir(self):
            if name.startswith("nvml"):
                monkeypatch.setattr(pynvml, name, self._counted(name, getattr(self, name)))
        return self

    def _counted(self, name: str, fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            self.calls[name] += 1
            return fn(*args)

        return wrapper

    @staticmethod
    def _value(value: Any) -> Any:
        if isinstance(value, dict) and "error" in value:
            raise nvml_error(value["error"])
        return value

    def _field(self, h: Any, field: str) -> Any:
        index = index_of(h)
        devices = self.sample["devices"]
        if not 0 <= index < len(devices):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._value(devices[index][field])

    # -- system
    def nvmlInit(self) -> None:
        self._value(self.capture.get("init") or {})

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._value(self.capture["system"]["driver_version"])

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self._value(self.capture["system"]["cuda_driver_version"])

    def nvmlDeviceGetCount(self) -> int:
        return self._value(self.sample["device_count"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        device = self.sample["devices"][index]
        if "handle" in device:
            self._value(device["handle"])
        return handle(index)

    # -- devices
    def nvmlDeviceGetUUID(self, h: Any) -> str:
        return self._field(h, "uuid")

    def nvmlDeviceGetName(self, h: Any) -> str:
        return self._field(h, "name")

    def nvmlDeviceGetPciInfo(self, h: Any) -> Any:
        info = pynvml.nvmlPciInfo_t()
        bus_id = self._field(h, "pci_bus_id").encode()
        info.busId = bus_id
        info.busIdLegacy = bus_id
        return info

    def nvmlDeviceGetMemoryInfo(self, h: Any, version: Any = None) -> Any:
        value = self._field(h, "memory_info")
        mem = pynvml.c_nvmlMemory_t()
        mem.total, mem.free, mem.used = value["total"], value["free"], value["used"]
        return mem

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:
        value = self._field(h, "utilization_rates")
        util = pynvml.c_nvmlUtilization_t()
        util.gpu, util.memory = value["gpu"], value["memory"]
        return util

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._field(h, "temperature")

    def nvmlDeviceGetTemperatureV(self, h: Any, sensor: int) -> int:
        return self.nvmlDeviceGetTemperature(h, sensor)

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return self._field(h, "power_usage")

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Any) -> int:
        return self._field(h, "enforced_power_limit")

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Any) -> int:
        return self._field(h, "clocks_event_reasons")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: Any) -> int:
        return self._field(h, "clocks_event_reasons")

    def nvmlDeviceGetMigMode(self, h: Any) -> list[int]:
        return list(self._field(h, "mig_mode"))

    def nvmlDeviceGetIndex(self, h: Any) -> int:
        return index_of(h)

    # -- events
    def nvmlEventSetCreate(self) -> Any:
        return ctypes.cast(ctypes.c_void_p(0xE0E0), pynvml.c_nvmlEventSet_t)

    def nvmlDeviceRegisterEvents(self, h: Any, event_types: int, event_set: Any) -> None:
        outcome = self.capture.get("xid", {}).get("register", {}).get(str(index_of(h)))
        if outcome:
            self._value(outcome)
        self.registered.append((index_of(h), event_types))

    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int) -> Any:
        if not self.events:
            raise pynvml.NVMLError_Timeout()
        event = self.events.pop(0)
        data = pynvml.c_nvmlEventData_t()
        data.device = handle(event["index"])
        data.eventType = event.get("event_type", pynvml.nvmlEventTypeXidCriticalError)
        data.eventData = event["xid"]
        data.gpuInstanceId = data.computeInstanceId = 0xFFFFFFFF
        return data

    def nvmlEventSetFree(self, event_set: Any) -> None:
        pass
