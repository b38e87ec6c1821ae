"""Render instance state as Prometheus metric families, at scrape time.

Nothing here talks to ComfyUI: a scrape costs ComfyUI nothing and never waits on it. Label values
that alert rules depend on (every ``error_type``, every known endpoint and malformed-message
source) are rendered at 0 from the start, because ``increase()`` cannot fire on a series born at 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from ..model.events import Event
from ..model.state import InstanceState

ENDPOINTS = ("history", "jobs", "queue", "system_stats")
MALFORMED_SOURCES = ("websocket", *ENDPOINTS)


@dataclass
class Instance:
    """An instance's state plus the lock that serialises the reducer against scrapes."""

    state: InstanceState
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, event: Event) -> None:
        with self.lock:
            self.state.apply(event)


class ComfyUICollector(Collector):
    def __init__(self, instances: Callable[[], Iterable[Instance]], clock: Callable[[], float] = time.time):
        self._instances = instances
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        # Empty describe: the registry must not call collect() at registration time.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        families = _Families()
        for instance in self._instances():
            with instance.lock:
                families.add(instance.state, now)
        build = GaugeMetricFamily(
            "comfyui_exporter_build_info", "Exporter version; always 1.", labels=["version"]
        )
        build.add_metric([__version__], 1)
        yield build
        yield from families.all()


class _Families:
    """One family object per metric name, filled instance by instance."""

    def __init__(self) -> None:
        c, g, h = CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        i = ["comfyui"]
        self.up = g("comfyui_up", "1 if the last request to this ComfyUI succeeded.", labels=i)
        self.info = g(
            "comfyui_info",
            "ComfyUI versions and torch device from /system_stats; always 1.",
            labels=[*i, "version", "python_version", "pytorch_version", "device_type", "device_name"],
        )
        self.queue = g("comfyui_queue_prompts", "Prompts in the queue by state.", labels=[*i, "state"])
        self.oldest_pending = g(
            "comfyui_queue_oldest_pending_age_seconds",
            "Age of the oldest pending prompt (from its create_time); 0 when nothing is pending.",
            labels=i,
        )
        self.running_age = g(
            "comfyui_running_prompt_age_seconds",
            "Since the running prompt was first seen running; 0 when idle.",
            labels=i,
        )
        self.progress_age = g(
            "comfyui_running_prompt_progress_age_seconds",
            "Since the last progress event for the running prompt; absent when none was seen.",
            labels=i,
        )
        self.finished = c(
            "comfyui_prompts_finished_total", "Prompts that reached history (any outcome).", labels=i
        )
        self.failures = c(
            "comfyui_prompt_failures_total", "Failed prompts by error class.", labels=[*i, "error_type"]
        )
        self.interrupted = c(
            "comfyui_prompts_interrupted_total", "Prompts interrupted (not failures).", labels=i
        )
        self.node_failures = c(
            "comfyui_node_failures_total",
            "Failed prompts by failing node type and exception type (capped, then 'other').",
            labels=[*i, "node_type", "error_type", "exception_type"],
        )
        self.last_failure = g(
            "comfyui_last_failure_timestamp_seconds",
            "When the newest failure of this class ended; 0 until one is seen.",
            labels=[*i, "error_type"],
        )
        self.last_finish = g(
            "comfyui_last_finish_timestamp_seconds", "When the newest counted prompt ended.", labels=i
        )
        self.execution = h(
            "comfyui_prompt_execution_seconds",
            "Execution time from history timestamps, by outcome.",
            labels=[*i, "outcome"],
        )
        self.queue_wait = h(
            "comfyui_prompt_queue_wait_seconds", "From create_time to execution_start.", labels=i
        )
        self.cached = c("comfyui_prompt_cached_nodes_total", "Nodes served from ComfyUI's cache.", labels=i)
        d = [*i, "device"]
        self.devices = g(
            "comfyui_devices",
            "Torch devices /system_stats lists: 1 up to 0.8.0 even on multi-GPU hosts, all visible on 0.38.",
            labels=i,
        )
        self.vram_total = g("comfyui_device_vram_total_bytes", "Device memory (/system_stats).", labels=d)
        self.vram_free = g(
            "comfyui_device_vram_free_bytes", "Free device memory as ComfyUI sees it.", labels=d
        )
        self.torch_reserved = g(
            "comfyui_device_torch_reserved_bytes", "Memory reserved by torch's allocator.", labels=d
        )
        self.torch_reserved_free = g(
            "comfyui_device_torch_reserved_free_bytes", "Reserved by torch but not in use.", labels=d
        )
        self.restarts = c("comfyui_restarts_total", "ComfyUI restarts detected by the exporter.", labels=i)
        self.lost = c(
            "comfyui_prompts_lost_total",
            "Prompts a ComfyUI restart lost: running or pending before it, "
            "in neither history nor queue after.",
            labels=[*i, "state"],
        )
        self.ws_connected = g(
            "comfyui_exporter_websocket_connected", "1 while the exporter's websocket is open.", labels=i
        )
        self.ws_reconnects = c(
            "comfyui_exporter_websocket_reconnects_total", "Websocket reconnects.", labels=i
        )
        e = [*i, "endpoint"]
        self.requests = c("comfyui_exporter_requests_total", "HTTP requests to ComfyUI.", labels=e)
        self.request_failures = c(
            "comfyui_exporter_request_failures_total", "Failed HTTP requests to ComfyUI.", labels=e
        )
        self.request_seconds = h(
            "comfyui_exporter_request_duration_seconds", "HTTP request duration to ComfyUI.", labels=e
        )
        self.malformed = c(
            "comfyui_exporter_malformed_messages_total",
            "Messages from ComfyUI that did not parse; counted and skipped.",
            labels=[*i, "source"],
        )
        self.plugin_connected = g(
            "comfyui_plugin_connected",
            "1 while the exporter reads the ComfyUI plugin's event stream.",
            labels=i,
        )
        self.rejections = c(
            "comfyui_prompt_rejections_total",
            "Submissions ComfyUI refused at validation (plugin only), by reason.",
            labels=[*i, "reason"],
        )
        self.guard_trips = c(
            "comfyui_vram_guard_trips_total",
            "Times the 'Health Check: VRAM' node found too little free memory (plugin only).",
            labels=[*i, "action"],
        )
        self.node_seconds = h(
            "comfyui_node_execution_seconds",
            "Execution time of nodes by type (plugin only; node_type capped, then 'other').",
            labels=[*i, "node_type"],
        )
        self.gaps = c(
            "comfyui_exporter_history_gaps_total",
            "Times the exporter could not prove no history entry was missed.",
            labels=i,
        )

    def add(self, s: InstanceState, now: float) -> None:
        n = s.name
        self.up.add_metric([n], 1 if s.up else 0)
        if s.system is not None:
            device = s.system.devices[0] if s.system.devices else None
            self.info.add_metric(
                [
                    n,
                    s.system.version,
                    s.system.python_version,
                    s.system.pytorch_version,
                    (device.type or "") if device else "",
                    device.name if device else "",
                ],
                1,
            )
        self.queue.add_metric([n, "pending"], len(s.pending))
        self.queue.add_metric([n, "running"], len(s.running))
        self.oldest_pending.add_metric([n], s.oldest_pending_age(now))
        self.running_age.add_metric([n], s.running_age(now))
        progress_age = s.progress_age(now)
        if progress_age is not None:
            self.progress_age.add_metric([n], progress_age)
        self.finished.add_metric([n], s.finished)
        for error_type, value in s.failures.items():
            self.failures.add_metric([n, error_type], value)
            self.last_failure.add_metric([n, error_type], s.last_failure[error_type])
        self.interrupted.add_metric([n], s.interrupted)
        for (node_type, error_type, exception_type), value in s.node_failures.items():
            self.node_failures.add_metric([n, node_type, error_type, exception_type], value)
        self.last_finish.add_metric([n], s.last_finish)
        for outcome, histogram in s.execution.items():
            self.execution.add_metric([n, outcome], histogram.cumulative(), histogram.sum)
        self.queue_wait.add_metric([n], s.queue_wait.cumulative(), s.queue_wait.sum)
        self.cached.add_metric([n], s.cached_nodes)
        if s.system is not None:
            self.devices.add_metric([n], len(s.system.devices))
        for device, values in s.device_series().items():
            for family, key in (
                (self.vram_total, "vram_total"),
                (self.vram_free, "vram_free"),
                (self.torch_reserved, "torch_vram_total"),
                (self.torch_reserved_free, "torch_vram_free"),
            ):
                if key in values:
                    family.add_metric([n, device], values[key])
        self.restarts.add_metric([n], s.restarts)
        for state, count in s.lost.items():
            self.lost.add_metric([n, state], count)
        self.ws_connected.add_metric([n], 1 if s.websocket_connected else 0)
        self.ws_reconnects.add_metric([n], s.websocket_reconnects)
        for endpoint in sorted(set(ENDPOINTS) | s.requests.keys()):
            self.requests.add_metric([n, endpoint], s.requests.get(endpoint, 0))
            self.request_failures.add_metric([n, endpoint], s.request_failures.get(endpoint, 0))
        for endpoint, histogram in s.request_seconds.items():
            self.request_seconds.add_metric([n, endpoint], histogram.cumulative(), histogram.sum)
        for source in sorted(set(MALFORMED_SOURCES) | s.malformed.keys()):
            self.malformed.add_metric([n, source], s.malformed.get(source, 0))
        self.gaps.add_metric([n], s.history_gaps)
        self._add_plugin(s)

    def _add_plugin(self, s: InstanceState) -> None:
        n, plugin = s.name, s.plugin
        self.plugin_connected.add_metric([n], 1 if plugin.connected else 0)
        if not plugin.seen:  # without the plugin these series would claim "0 rejections" falsely
            return
        for reason, value in plugin.rejections.items():
            self.rejections.add_metric([n, reason], value)
        for action, value in plugin.guard_trips.items():
            self.guard_trips.add_metric([n, action], value)
        for node_type, histogram in plugin.node_seconds.items():
            self.node_seconds.add_metric([n, node_type], histogram.cumulative(), histogram.sum)

    def all(self) -> list[Metric]:
        # Families without samples (progress age when idle, plugin series without a plugin) are left out.
        return [value for value in vars(self).values() if isinstance(value, Metric) and value.samples]
