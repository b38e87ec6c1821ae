"""Per-device series from a multi-device /system_stats (ComfyUI 0.38 lists every torch device)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from comfyui_exporter.exposition.collector import ComfyUICollector, Instance
from comfyui_exporter.model.events import DeviceStats, SystemStats
from comfyui_exporter.model.state import MAX_DEVICES, OTHER, InstanceState

GIB = 1024**3


def _cuda(index: int, free: int = 10 * GIB) -> DeviceStats:
    return DeviceStats(f"cuda:{index} NVIDIA H200 : cudaMallocAsync", "cuda", index, 140 * GIB, free, 0, 0)


def _samples(state: InstanceState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(ComfyUICollector(lambda: [Instance(state)], clock=lambda: 100.0))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


def _stats(*devices: DeviceStats) -> SystemStats:
    return SystemStats(1.0, "0.38.0", "3.11.7", "2.13.0", ("main.py",), devices)


def test_every_listed_device_gets_its_own_series_and_the_count() -> None:
    state = InstanceState("a")
    state.apply(_stats(_cuda(0, 5 * GIB), _cuda(1), _cuda(2), _cuda(3)))
    got = _samples(state)
    assert got[("comfyui_devices", (("comfyui", "a"),))] == 4
    free = {
        dict(labels)["device"]: value
        for (name, labels), value in got.items()
        if name == "comfyui_device_vram_free_bytes"
    }
    assert free == {
        "cuda:0 NVIDIA H200 : cudaMallocAsync": 5 * GIB,
        "cuda:1 NVIDIA H200 : cudaMallocAsync": 10 * GIB,
        "cuda:2 NVIDIA H200 : cudaMallocAsync": 10 * GIB,
        "cuda:3 NVIDIA H200 : cudaMallocAsync": 10 * GIB,
    }
    # comfyui_info still describes the device ComfyUI runs on: 0.38 lists it first.
    info = [dict(labels) for (name, labels), _ in got.items() if name == "comfyui_info"]
    assert [i["device_name"] for i in info] == ["cuda:0 NVIDIA H200 : cudaMallocAsync"]


def test_device_labels_are_capped_and_the_rest_summed_into_other() -> None:
    state = InstanceState("a")
    many = [_cuda(i, GIB) for i in range(MAX_DEVICES + 5)]
    state.apply(_stats(*many))
    got = _samples(state)
    totals = {
        dict(labels)["device"]: value
        for (name, labels), value in got.items()
        if name == "comfyui_device_vram_total_bytes"
    }
    assert len(totals) == MAX_DEVICES + 1
    assert totals[OTHER] == 5 * 140 * GIB
    assert got[("comfyui_devices", (("comfyui", "a"),))] == MAX_DEVICES + 5
    # The first-come set is kept across polls: a later, shorter list does not reshuffle labels.
    state.apply(_stats(_cuda(MAX_DEVICES + 1, 3 * GIB)))
    got = _samples(state)
    free = {
        dict(labels)["device"]: value
        for (name, labels), value in got.items()
        if name == "comfyui_device_vram_free_bytes"
    }
    assert free == {OTHER: 3 * GIB}


def test_single_device_servers_look_as_before() -> None:
    state = InstanceState("a")
    cpu = DeviceStats("cpu", "cpu", None, 25 * GIB, 20 * GIB, 25 * GIB, 20 * GIB)
    state.apply(SystemStats(1.0, "0.3.64", "3.11.7", "2.13.0+cpu", ("main.py",), (cpu,)))
    got = _samples(state)
    assert got[("comfyui_devices", (("comfyui", "a"),))] == 1
    assert got[("comfyui_device_vram_free_bytes", (("comfyui", "a"), ("device", "cpu")))] == 20 * GIB
