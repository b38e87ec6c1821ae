"""The GPU collector: NVML read at scrape time, XID events from a thread, ComfyUI-to-GPU mapping.

Why a custom collector read at scrape time: NVML queries are plain driver calls, so reading on scrape
keeps values as fresh as the scrape and costs nothing between scrapes (the collector exports its own
duration, comfyui_exporter_nvml_collect_duration_seconds, to keep that claim honest on real GPUs).
``collect()`` never raises (a broken GPU or an exporter bug must not fail the whole /metrics page)
and serialises concurrent scrapes with a lock.

NVML missing (CPU host, no driver, AMD, Apple) is a normal state: ``comfyui_exporter_nvml_up 0``, one
WARNING line, no traceback. NVML_ERROR_LIBRARY_NOT_FOUND is treated as permanent (installing a driver
means restarting the exporter); other init failures are retried every ``retry_interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import replace

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .mapping import ComfyDevice, GpuMapping, Unmapped, map_devices
from .source.errors import ErrorCounts
from .source.nvml import CLOCK_EVENT_REASONS, NvmlLike, cuda_version_string, error_reason
from .source.read import GpuReader, Snapshot
from .source.xid import XidStore, XidWatcher

log = logging.getLogger(__name__)

GPU_LABELS = ("gpu", "uuid")


class _Families:
    """The metric families of one scrape, created in exposition order."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.nvml_up = g("comfyui_exporter_nvml_up", "1 when NVML is initialised and answered this scrape.")
        self.errors = c(
            "comfyui_exporter_nvml_errors",
            "NVML calls that failed, by NVML error name (not_supported is counted once per GPU and field).",
            labels=("reason",),
        )
        self.expected = g(
            "comfyui_exporter_gpus_expected",
            "GPUs this host should have: --gpu-expected-count, else the most NVML has reported since start.",
        )
        self.present = g("comfyui_exporter_gpus_present", "GPUs that answered NVML this scrape.")
        self.gpu_up = g(
            "comfyui_gpu_up",
            "1 when the GPU answered this scrape; 0 for a GPU seen before that is lost or not reported.",
            labels=GPU_LABELS,
        )
        self.info = g(
            "comfyui_gpu_info",
            "GPU identity from NVML; value is always 1.",
            labels=("gpu", "uuid", "name", "pci_bus_id", "driver_version", "cuda_version"),
        )
        self.mem_total = g(
            "comfyui_gpu_memory_total_bytes", "Total framebuffer memory (NVML).", labels=GPU_LABELS
        )
        self.mem_free = g(
            "comfyui_gpu_memory_free_bytes", "Unallocated framebuffer memory (NVML).", labels=GPU_LABELS
        )
        self.mem_used = g(
            "comfyui_gpu_memory_used_bytes",
            "Allocated framebuffer memory incl. driver-reserved (NVML); PyTorch's cache counts as used.",
            labels=GPU_LABELS,
        )
        self.util = g(
            "comfyui_gpu_utilization_ratio",
            "Share of NVML's last sample period with a kernel running on the GPU.",
            labels=GPU_LABELS,
        )
        self.mem_util = g(
            "comfyui_gpu_memory_utilization_ratio",
            "Share of NVML's last sample period the memory controller was busy (not memory in use).",
            labels=GPU_LABELS,
        )
        self.temp = g("comfyui_gpu_temperature_celsius", "GPU core temperature.", labels=GPU_LABELS)
        self.power = g("comfyui_gpu_power_watts", "Board power draw.", labels=GPU_LABELS)
        self.power_limit = g(
            "comfyui_gpu_power_limit_watts", "Enforced board power limit.", labels=GPU_LABELS
        )
        self.throttle = g(
            "comfyui_gpu_throttle_reasons",
            "1 while NVML reports this clock event (throttle) reason as active.",
            labels=(*GPU_LABELS, "reason"),
        )
        self.mig = g("comfyui_gpu_mig_enabled", "1 when MIG mode is enabled on the GPU.", labels=GPU_LABELS)
        self.xid_total = c(
            "comfyui_gpu_xid_errors",
            "NVML XID critical-error events since the exporter started.",
            labels=(*GPU_LABELS, "xid"),
        )
        self.xid_last = g(
            "comfyui_gpu_last_xid_timestamp_seconds",
            "Unix time of the last XID event of this number on this GPU.",
            labels=(*GPU_LABELS, "xid"),
        )
        self.device_gpu = g(
            "comfyui_device_gpu_info",
            "The GPU a ComfyUI instance runs on (see docs/gpu.md for how it is derived); value is always 1.",
            labels=("comfyui", "gpu", "uuid"),
        )
        self.duration = g(
            "comfyui_exporter_nvml_collect_duration_seconds",
            "Time the GPU collector took for this scrape.",
        )

    def all(self) -> list[Metric]:
        return list(vars(self).values())


class GpuCollector(Collector):
    """prometheus_client collector for NVML GPUs; see the module docstring. Use build_gpu_collector()."""

    def __init__(
        self,
        nvml: NvmlLike | None,
        *,
        enabled: bool = True,
        expected_gpus: int | None = None,
        devices: Callable[[], Sequence[ComfyDevice]] = list,
        clock: Callable[[], float] = time.monotonic,
        timer: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.time,
        retry_interval_s: float = 60.0,
        xid_poll_ms: int = 500,
        start_xid_thread: bool = True,
    ) -> None:
        if expected_gpus is not None and expected_gpus < 0:
            raise ValueError("expected_gpus must be >= 0")
        self.enabled = enabled and nvml is not None
        self.expected_gpus = expected_gpus
        self._nvml = nvml
        self._devices = devices
        self._clock = clock
        self._timer = timer
        self._wall = wall
        self._retry_interval_s = retry_interval_s
        self._xid_poll_ms = xid_poll_ms
        self._start_xid_thread = start_xid_thread
        self._lock = threading.RLock()
        self.errors = ErrorCounts()
        self.xid_store = XidStore()
        self.reader: GpuReader | None = GpuReader(nvml, self.errors) if nvml is not None else None
        self.xid_watcher: XidWatcher | None = None
        self._up = False
        self._closed = False
        self._permanent_failure = False
        self._next_init = float("-inf")
        self._init_failures = 0
        self._driver = ""
        self._cuda = ""
        self._max_seen: int | None = None
        self._mapping_log: dict[str, str] = {}
        self._mapping_cache: tuple[Hashable, list[GpuMapping | Unmapped]] | None = None
        self._bug_logged: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Initialise NVML now (so the one log line comes at startup) and start the XID thread."""
        if self.enabled:
            with self._lock:
                self._ensure_init()

    def close(self) -> None:
        """Stop the XID thread and shut NVML down; later scrapes export nothing. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._mark_down(None)

    def _ensure_init(self) -> bool:
        if self._up:
            return True
        if self._closed or self._permanent_failure or self._clock() < self._next_init:
            return False
        assert self._nvml is not None and self.reader is not None
        try:
            self._nvml.init()
        except Exception as exc:
            reason = error_reason(exc)
            self.errors.inc(reason)
            self._init_failures += 1
            self._permanent_failure = reason == "library_not_found"
            self._next_init = self._clock() + self._retry_interval_s
            if self._init_failures == 1:
                retry = (
                    "not retried"
                    if self._permanent_failure
                    else f"retried every {self._retry_interval_s:g} s"
                )
                log.warning(
                    "NVML unavailable (%s: %s): GPU metrics are off and comfyui_exporter_nvml_up is 0; %s. "
                    "Pass --no-gpu on hosts without NVIDIA GPUs.",
                    reason,
                    exc,
                    retry,
                )
            else:
                log.debug("NVML init failed again (%s: %s)", reason, exc)
            return False
        self._up = True
        self._init_failures = 0
        self.reader.reset()
        self._driver = self._system_call("driver_version", str)
        self._cuda = self._system_call("cuda_driver_version", cuda_version_string)
        count: int | str = "?"
        try:
            count = self._nvml.device_count()
        except Exception as exc:  # the next read() reports and handles it
            log.debug("device count after init failed: %s", exc)
        log.info(
            "NVML initialised: driver %s, CUDA %s, %s GPUs", self._driver or "?", self._cuda or "?", count
        )
        if isinstance(count, int):
            self._start_xid(count)
        return True

    def _system_call(self, what: str, convert: Callable[..., str]) -> str:
        assert self._nvml is not None
        try:
            return convert(getattr(self._nvml, what)())
        except Exception as exc:
            self.errors.inc(error_reason(exc))
            log.warning("NVML %s failed: %s", what, exc)
            return ""

    def _start_xid(self, count: int) -> None:
        assert self._nvml is not None and self.reader is not None
        reader = self.reader
        self.xid_watcher = XidWatcher(
            self._nvml,
            self.xid_store,
            self.errors,
            uuid_for_index=lambda i: reader.known[i].uuid if i in reader.known else None,
            wall=self._wall,
            poll_ms=self._xid_poll_ms,
        )
        self.xid_watcher.register(range(count))
        if self._start_xid_thread:
            self.xid_watcher.start()

    def _mark_down(self, exc: BaseException | None) -> None:
        """NVML stopped working (or close()): stop the thread, shut down, retry init later."""
        if self.xid_watcher is not None:
            self.xid_watcher.stop()
            self.xid_watcher = None
        if self._up and self._nvml is not None:
            try:
                self._nvml.shutdown()
            except Exception as shutdown_exc:
                log.debug("nvmlShutdown failed: %s", shutdown_exc)
        if exc is not None and self._up:
            log.warning(
                "NVML stopped answering (%s: %s); GPU metrics are off until it initialises again",
                error_reason(exc),
                exc,
            )
        self._up = False
        self._next_init = self._clock() + self._retry_interval_s

    # -- prometheus_client -----------------------------------------------------------------------------
    def describe(self) -> Iterable[Metric]:
        """Names only, so registering neither calls NVML nor needs it."""
        return _Families().all() if self.enabled else []

    def collect(self) -> Iterable[Metric]:
        if not self.enabled:
            return []
        with self._lock:
            if self._closed:
                return []
            start = self._timer()
            try:
                fams = self._collect()
            except Exception as exc:  # a bug: never fail the scrape, log the traceback once per kind
                self.errors.inc("exception")
                kind = type(exc).__name__
                if kind not in self._bug_logged:
                    self._bug_logged.add(kind)
                    log.exception("GPU collector failed; exporting nvml_up 0 for this scrape")
                fams = _Families()
                fams.nvml_up.add_metric([], 0)
                self._add_errors(fams)
            fams.duration.add_metric([], self._timer() - start)
            return fams.all()

    # -- one scrape ------------------------------------------------------------------------------------
    def _collect(self) -> _Families:
        fams = _Families()
        snapshot: Snapshot | None = None
        if self._ensure_init():
            assert self.reader is not None
            try:
                snapshot = self.reader.read()
            except Exception as exc:
                self.errors.inc(error_reason(exc))
                self._mark_down(exc)
        fams.nvml_up.add_metric([], 1 if snapshot is not None else 0)
        if snapshot is not None:
            self._max_seen = max(self._max_seen or 0, snapshot.device_count)
            self._add_gpus(fams, snapshot)
        else:
            for index, known in sorted(self.reader.known.items()) if self.reader else []:
                fams.gpu_up.add_metric([str(index), known.uuid], 0)
        present = len(snapshot.gpus) if snapshot is not None else 0
        fams.present.add_metric([], present)
        expected = self.expected_gpus if self.expected_gpus is not None else self._max_seen
        if expected is not None:
            fams.expected.add_metric([], expected)
        self._add_mapping(fams)
        for series in self.xid_store.snapshot():
            labels = [series.gpu, series.uuid, series.xid]
            fams.xid_total.add_metric(labels, series.count)
            fams.xid_last.add_metric(labels, series.last_seconds)
        self._add_errors(fams)
        return fams

    def _add_errors(self, fams: _Families) -> None:
        for reason, count in self.errors.snapshot().items():
            fams.errors.add_metric([reason], count)

    def _add_gpus(self, fams: _Families, snapshot: Snapshot) -> None:
        up = [(r.index, r.uuid, 1) for r in snapshot.gpus] + [(i, u, 0) for i, u in snapshot.down]
        for index, uuid, value in sorted(up):
            fams.gpu_up.add_metric([str(index), uuid], value)
        for r in snapshot.gpus:
            labels = [str(r.index), r.uuid]
            fams.info.add_metric([*labels, r.name or "", r.pci_bus_id or "", self._driver, self._cuda], 1)
            if r.memory_info is not None:
                fams.mem_total.add_metric(labels, r.memory_info.total)
                fams.mem_free.add_metric(labels, r.memory_info.free)
                fams.mem_used.add_metric(labels, r.memory_info.used)
            if r.utilization_rates is not None:
                fams.util.add_metric(labels, r.utilization_rates.gpu / 100)
                fams.mem_util.add_metric(labels, r.utilization_rates.memory / 100)
            if r.temperature is not None:
                fams.temp.add_metric(labels, r.temperature)
            if r.power_usage is not None:
                fams.power.add_metric(labels, r.power_usage / 1000)
            if r.enforced_power_limit is not None:
                fams.power_limit.add_metric(labels, r.enforced_power_limit / 1000)
            if r.clocks_event_reasons is not None:
                for reason, bit in CLOCK_EVENT_REASONS:
                    fams.throttle.add_metric([*labels, reason], 1 if r.clocks_event_reasons & bit else 0)
            if r.mig_mode is not None:
                fams.mig.add_metric(labels, 1 if r.mig_mode[0] == 1 else 0)

    def _add_mapping(self, fams: _Families) -> None:
        """comfyui_device_gpu_info; a failure here costs the mapping only, never the GPU series."""
        try:
            # argv as a tuple keeps ComfyDevice hashable for the cache, whatever the caller passed
            devices = [replace(d, argv=tuple(d.argv)) for d in self._devices()]
            known = tuple(sorted(self.reader.known.values(), key=lambda g: g.index)) if self.reader else ()
            key = (tuple(devices), known)
            if self._mapping_cache is None or self._mapping_cache[0] != key:  # inputs rarely change
                self._mapping_cache = (key, map_devices(devices, known))
            results = self._mapping_cache[1]
        except Exception as exc:
            self.errors.inc("exception")
            if "devices" not in self._bug_logged:
                self._bug_logged.add("devices")
                log.warning("could not map ComfyUI devices to GPUs: %r", exc)
            return
        for device, result in zip(devices, results, strict=True):
            if isinstance(result, GpuMapping):
                fams.device_gpu.add_metric([result.instance, result.gpu, result.uuid], 1)
                self._log_mapping(
                    result.instance,
                    f"runs on GPU {result.gpu or '?'} {result.uuid} ({result.method})",
                    logging.INFO,
                )
            else:
                self._log_unmapped(device, result, bool(known))

    def _log_unmapped(self, device: ComfyDevice, result: Unmapped, have_gpus: bool) -> None:
        is_cuda = (device.type or "").lower() == "cuda"
        level = logging.WARNING if is_cuda and have_gpus else logging.INFO if is_cuda else logging.DEBUG
        self._log_mapping(result.instance, f"is not mapped to a GPU: {result.reason}", level)

    def _log_mapping(self, instance: str, message: str, level: int) -> None:
        if self._mapping_log.get(instance) != message:
            self._mapping_log[instance] = message
            log.log(level, "ComfyUI %s %s", instance, message)


def build_gpu_collector(
    enabled: bool,
    expected_gpus: int | None,
    devices: Callable[[], list[ComfyDevice]],
    nvml: NvmlLike | None = None,
) -> GpuCollector:
    """The collector the CLI registers (``--no-gpu`` -> enabled=False, ``--gpu-expected-count``).

    Initialises NVML and starts the XID thread right away, so an unavailable NVML is reported once at
    startup. Disabled, it exports nothing and never touches NVML.
    """
    if not enabled:
        log.info("GPU metrics disabled (--no-gpu)")
        return GpuCollector(None, enabled=False, expected_gpus=expected_gpus, devices=devices)
    if nvml is None:
        from .source.nvml import PynvmlNvml

        nvml = PynvmlNvml()
    collector = GpuCollector(nvml, expected_gpus=expected_gpus, devices=devices)
    collector.start()
    return collector
