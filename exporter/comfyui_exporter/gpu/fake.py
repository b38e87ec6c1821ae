"""An NvmlLike that replays a golden capture (the JSON written by ``comfyui_exporter.gpu.capture``).

Why a replay and not a mock: the collector must behave on what NVML really returns (units, error
classes, a GPU that answers its UUID but nothing else once it fell off the bus), and a capture keeps
those facts in one reviewable file per machine instead of scattered through test code. The format is
described in tests/fixtures/nvml/README.md.

A capture holds one or more *samples* (successive reads of every device). The fake starts at sample 0
and :meth:`FakeNvml.advance` moves to the next one (it stays on the last), so "a GPU lost mid-run" is
sample 0 healthy, sample 1 lost. XID events carry the sample from which they are delivered.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pynvml

from .source.nvml import MemoryInfo, Utilization, XidEvent, nvml_error

CAPTURE_FORMAT = "comfyui-exporter-nvml-capture"
CAPTURE_VERSION = 1


def load_capture(path: str | Path) -> dict[str, Any]:
    """Read and minimally validate a capture file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != CAPTURE_FORMAT or data.get("version") != CAPTURE_VERSION:
        raise ValueError(f"{path}: not a {CAPTURE_FORMAT} v{CAPTURE_VERSION} file")
    return data


def _is_error(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def _convert(field: str, value: Any) -> Any:
    """JSON value -> what the NvmlLike method returns."""
    if field == "memory_info":
        return MemoryInfo(total=int(value["total"]), free=int(value["free"]), used=int(value["used"]))
    if field == "utilization_rates":
        return Utilization(gpu=int(value["gpu"]), memory=int(value["memory"]))
    if field == "mig_mode":
        return int(value[0]), int(value[1])
    return value


class FakeNvml:
    """NvmlLike driven by a capture dict; thread-safe, raises the real pynvml.NVMLError subclasses."""

    def __init__(self, capture: dict[str, Any]) -> None:
        self.capture = copy.deepcopy(capture)
        self.sample_index = 0
        self.initialised = False
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._events = list(self.capture.get("xid", {}).get("events", []))
        self._registered: set[int] = set()
        self._closed = False

    @classmethod
    def from_file(cls, path: str | Path) -> FakeNvml:
        return cls(load_capture(path))

    # -- test controls ---------------------------------------------------------------------------------
    @property
    def samples(self) -> list[dict[str, Any]]:
        return self.capture.get("samples", [])

    def advance(self) -> None:
        """Move to the next sample (stays on the last one) and wake a waiting xid_wait."""
        with self._lock:
            if self.sample_index + 1 < len(self.samples):
                self.sample_index += 1
        self._wake.set()

    def set_device_field(self, index: int, field: str, value: Any) -> None:
        """Overwrite one field of the current sample; value may be {"error": "NOT_SUPPORTED"}."""
        with self._lock:
            self.samples[self.sample_index]["devices"][index][field] = value

    # -- helpers ---------------------------------------------------------------------------------------
    def _value(self, value: Any) -> Any:
        if _is_error(value):
            raise nvml_error(value["error"])
        return value

    def _require_init(self, call: str) -> None:
        self.calls[call] += 1
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _sample(self) -> dict[str, Any]:
        samples = self.samples
        return samples[min(self.sample_index, len(samples) - 1)] if samples else {"device_count": 0}

    def _device_field(self, index: int, field: str) -> Any:
        self._require_init(field)
        with self._lock:
            devices = self._sample().get("devices", [])
            if not 0 <= index < len(devices):
                raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            device = devices[index]
            if "handle" in device:
                self._value(device["handle"])
            if field not in device:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return _convert(field, self._value(device[field]))

    # -- NvmlLike --------------------------------------------------------------------------------------
    def init(self) -> None:
        self.calls["init"] += 1
        error = self.capture.get("init")
        if error:
            self._value(error)
        self.initialised = True
        self._closed = False

    def shutdown(self) -> None:
        self._require_init("shutdown")
        self.initialised = False

    def driver_version(self) -> str:
        self._require_init("driver_version")
        return str(self._value(self.capture["system"]["driver_version"]))

    def cuda_driver_version(self) -> int:
        self._require_init("cuda_driver_version")
        return int(self._value(self.capture["system"]["cuda_driver_version"]))

    def device_count(self) -> int:
        self._require_init("device_count")
        with self._lock:
            return int(self._value(self._sample()["device_count"]))

    def uuid(self, index: int) -> str:
        return str(self._device_field(index, "uuid"))

    def name(self, index: int) -> str:
        return str(self._device_field(index, "name"))

    def pci_bus_id(self, index: int) -> str:
        return str(self._device_field(index, "pci_bus_id"))

    def memory_info(self, index: int) -> MemoryInfo:
        return self._device_field(index, "memory_info")

    def utilization_rates(self, index: int) -> Utilization:
        return self._device_field(index, "utilization_rates")

    def temperature(self, index: int) -> int:
        return int(self._device_field(index, "temperature"))

    def power_usage(self, index: int) -> int:
        return int(self._device_field(index, "power_usage"))

    def enforced_power_limit(self, index: int) -> int:
        return int(self._device_field(index, "enforced_power_limit"))

    def clocks_event_reasons(self, index: int) -> int:
        return int(self._device_field(index, "clocks_event_reasons"))

    def mig_mode(self, index: int) -> tuple[int, int]:
        return self._device_field(index, "mig_mode")

    def xid_register(self, index: int) -> None:
        self._require_init("xid_register")
        outcome = self.capture.get("xid", {}).get("register", {}).get(str(index))
        if outcome:
            self._value(outcome)
        self._registered.add(index)

    def xid_wait(self, timeout_ms: int) -> XidEvent | None:
        self._require_init("xid_wait")
        with self._lock:
            for pos, event in enumerate(self._events):
                if event.get("sample", 0) <= self.sample_index and (
                    event.get("index") is None or event["index"] in self._registered
                ):
                    del self._events[pos]
                    if "error" in event:
                        raise nvml_error(event["error"])
                    return XidEvent(index=event.get("index"), uuid=event.get("uuid"), xid=int(event["xid"]))
            self._wake.clear()
        if timeout_ms > 0 and not self._closed:
            self._wake.wait(timeout_ms / 1000)
        return None

    def xid_close(self) -> None:
        self.calls["xid_close"] += 1
        self._closed = True
        self._registered.clear()
        self._wake.set()
