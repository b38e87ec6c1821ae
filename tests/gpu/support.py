"""Shared helpers for the GPU tests: fixtures, a deterministic collector, exposition parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from comfyui_exporter.gpu.collector import GpuCollector
from comfyui_exporter.gpu.fake import FakeNvml
from comfyui_exporter.gpu.mapping import ComfyDevice
from comfyui_exporter.gpu.source.nvml import NvmlLike

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "nvml"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_ENV = "COMFYUI_EXPORTER_UPDATE_GOLDEN"
WALL = 1767225600.0  # 2026-01-01T00:00:00Z, the "now" of every XID timestamp in golden files
STEP = 0.00390625  # what the fake timer advances per call (1/256 s, exact in binary): a fixed duration


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def fake(name: str) -> FakeNvml:
    return FakeNvml.from_file(FIXTURES / f"{name}.json")


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class StepTimer:
    """perf_counter stand-in: every call returns STEP more than the last."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.calls * STEP


def make_collector(
    nvml: NvmlLike | None,
    devices: Sequence[ComfyDevice] | Callable[[], Sequence[ComfyDevice]] = (),
    **kwargs: Any,
) -> GpuCollector:
    """A started collector with deterministic clocks and no XID thread (tests call poll_once)."""
    provider = devices if callable(devices) else (lambda: list(devices))
    kwargs.setdefault("timer", StepTimer())
    kwargs.setdefault("wall", lambda: WALL)
    kwargs.setdefault("clock", ManualClock())
    kwargs.setdefault("start_xid_thread", False)
    kwargs.setdefault("xid_poll_ms", 0)
    collector = GpuCollector(nvml, devices=provider, **kwargs)
    collector.start()
    return collector


def drain_xid(collector: GpuCollector) -> int:
    """Deliver every XID event the fake has for its current sample; returns how many."""
    watcher = collector.xid_watcher
    n = 0
    while watcher is not None and watcher.poll_once():
        n += 1
    return n


def exposition(collector: GpuCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """{(sample name, sorted labels): value} of an exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def series(samples: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric whose labels include `labels`."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in samples.items() if n == name and want <= set(lab)}


def value(samples: Samples, name: str, **labels: str) -> float:
    found = series(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: expected one sample, got {found}"
    return next(iter(found.values()))
