"""One read of every GPU, field by field, with NVML errors turned into data.

Why field by field: a GPU that fails one query (a consumer card without a power sensor, a MIG-enabled
GPU that has no device-level utilization, a transient NVML_ERROR_UNKNOWN) must lose only that series,
not the whole scrape. The exception is NVML_ERROR_GPU_IS_LOST from any query: that GPU fell off the
bus, and every series it had so far in this read is dropped, so nothing stale is exported for it.

Cheapness: UUID is read every time (it detects a swapped device), name and PCI bus id are cached per
(index, uuid) because they cannot change, and a field that answered NOT_SUPPORTED is not asked again
for that GPU (it is counted once) until NVML is initialised again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from .errors import ErrorCounts
from .nvml import InvalidValue, MemoryInfo, NvmlLike, Utilization, error_reason, is_error

log = logging.getLogger(__name__)

# Readers whose value becomes a metric every scrape (uuid/name/pci_bus_id are handled separately).
_DYNAMIC_FIELDS: tuple[str, ...] = (
    "memory_info",
    "utilization_rates",
    "temperature",
    "power_usage",
    "enforced_power_limit",
    "clocks_event_reasons",
    "mig_mode",
)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return int(value)


# Each answer is checked on the way in: a value of the wrong shape would otherwise break the whole
# exposition later (prometheus_client renders after collect() returned), which is worse than one lost series.
_CHECK: dict[str, Callable[[Any], Any]] = {
    "uuid": _text,
    "name": _text,
    "pci_bus_id": _text,
    "memory_info": lambda v: MemoryInfo(total=_number(v.total), free=_number(v.free), used=_number(v.used)),
    "utilization_rates": lambda v: Utilization(gpu=_number(v.gpu), memory=_number(v.memory)),
    "temperature": _number,
    "power_usage": _number,
    "enforced_power_limit": _number,
    "clocks_event_reasons": _number,
    "mig_mode": lambda v: (_number(v[0]), _number(v[1])),
}


class GpuLost(Exception):
    """NVML_ERROR_GPU_IS_LOST from any query of this GPU during this read."""


@dataclass
class GpuReading:
    """What one GPU answered in one read; None means that field is not exported this time."""

    index: int
    uuid: str
    name: str | None = None
    pci_bus_id: str | None = None
    memory_info: MemoryInfo | None = None
    utilization_rates: Utilization | None = None
    temperature: int | None = None
    power_usage: int | None = None  # mW
    enforced_power_limit: int | None = None  # mW
    clocks_event_reasons: int | None = None
    mig_mode: tuple[int, int] | None = None


@dataclass(frozen=True)
class KnownGpu:
    """Identity remembered from earlier reads, used for gpu_up=0 series and for mapping ComfyUI."""

    index: int
    uuid: str
    name: str | None
    memory_total: int | None


@dataclass
class Snapshot:
    """Result of one read. `down` lists (index, last known uuid or "") of GPUs that did not answer."""

    device_count: int
    gpus: list[GpuReading] = field(default_factory=list)
    down: list[tuple[int, str]] = field(default_factory=list)


class GpuReader:
    """Reads all GPUs through an NvmlLike; keeps the small caches described in the module docstring."""

    def __init__(self, nvml: NvmlLike, errors: ErrorCounts) -> None:
        self._nvml = nvml
        self._errors = errors
        self._identity: dict[tuple[int, str], tuple[str | None, str | None]] = {}
        self._unsupported: set[tuple[str, str]] = set()
        self._logged: set[tuple[str, str, str]] = set()
        self._lost: set[int] = set()
        self.known: dict[int, KnownGpu] = {}

    def reset(self) -> None:
        """Forget what depends on one NVML session (after shutdown/init); keep `known` identities."""
        self._identity.clear()
        self._unsupported.clear()

    def _note_error(self, gpu: str, what: str, exc: BaseException) -> str:
        reason = error_reason(exc)
        self._errors.inc(reason)
        key = (gpu, what, reason)
        if key not in self._logged:
            self._logged.add(key)
            level = logging.INFO if reason == "not_supported" else logging.WARNING
            log.log(
                level, "NVML %s on GPU %s failed: %s (%s); that series is skipped", what, gpu, exc, reason
            )
        return reason

    def _call(self, reading: GpuReading, what: str) -> Any:
        """One field; GpuLost on GPU_IS_LOST, None (counted) on any other error."""
        if (reading.uuid, what) in self._unsupported:
            return None
        try:
            return self._checked(what, getattr(self._nvml, what)(reading.index))
        except Exception as exc:
            if is_error(exc, pynvml.NVML_ERROR_GPU_IS_LOST):
                raise GpuLost from exc
            if self._note_error(reading.uuid, what, exc) == "not_supported":
                self._unsupported.add((reading.uuid, what))
            return None

    @staticmethod
    def _checked(what: str, value: Any) -> Any:
        try:
            return _CHECK[what](value)
        except Exception as exc:
            raise InvalidValue(f"{what} returned {value!r}: {exc}") from exc

    def _read_one(self, index: int) -> GpuReading:
        try:
            uuid = self._checked("uuid", self._nvml.uuid(index))
        except Exception as exc:
            if is_error(exc, pynvml.NVML_ERROR_GPU_IS_LOST):
                raise GpuLost from exc
            self._note_error(str(index), "uuid", exc)
            raise
        reading = GpuReading(index=index, uuid=uuid)
        cached = self._identity.get((index, uuid))
        if cached is None:
            cached = (self._call(reading, "name"), self._call(reading, "pci_bus_id"))
            if None not in cached:
                self._identity[(index, uuid)] = cached
        reading.name, reading.pci_bus_id = cached
        for what in _DYNAMIC_FIELDS:
            setattr(reading, what, self._call(reading, what))
        return reading

    def read(self) -> Snapshot:
        """Read every GPU. Raises only what device_count() raises (NVML itself is not usable)."""
        count = int(self._nvml.device_count())
        snapshot = Snapshot(device_count=count)
        for index in range(count):
            previous = self.known.get(index)
            try:
                reading = self._read_one(index)
            except GpuLost:
                self._errors.inc("gpu_is_lost")
                if index not in self._lost:
                    self._lost.add(index)
                    log.error(
                        "GPU %s (%s) is lost (NVML_ERROR_GPU_IS_LOST: fell off the bus); its series are "
                        "dropped until it answers again, which usually needs a GPU reset or a reboot",
                        index,
                        previous.uuid if previous else "uuid unknown",
                    )
                snapshot.down.append((index, previous.uuid if previous else ""))
                continue
            except Exception:
                snapshot.down.append((index, previous.uuid if previous else ""))
                continue
            if index in self._lost:
                self._lost.discard(index)
                log.warning("GPU %s (%s) answers again", index, reading.uuid)
            snapshot.gpus.append(reading)
            total = reading.memory_info.total if reading.memory_info else None
            if previous and previous.uuid == reading.uuid:
                total = total if total is not None else previous.memory_total
                name = reading.name if reading.name is not None else previous.name
            else:
                name = reading.name
            self.known[index] = KnownGpu(index=index, uuid=reading.uuid, name=name, memory_total=total)
        for index in sorted(set(self.known) - set(range(count))):
            if index not in self._lost:
                self._lost.add(index)
                log.error(
                    "GPU %s (%s) is no longer reported by NVML (%s GPUs now)",
                    index,
                    self.known[index].uuid,
                    count,
                )
            snapshot.down.append((index, self.known[index].uuid))
        return snapshot
