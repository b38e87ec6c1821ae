"""GpuCollector behaviour on the golden captures and on injected NVML failures."""

from __future__ import annotations

import copy
import ctypes.util
import inspect
import logging
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pynvml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from comfyui_exporter.gpu import build_gpu_collector
from comfyui_exporter.gpu.collector import GpuCollector
from comfyui_exporter.gpu.fake import FakeNvml
from comfyui_exporter.gpu.mapping import ComfyDevice
from comfyui_exporter.gpu.source.nvml import DEVICE_FIELDS

from .scenarios import SCENARIOS
from .support import ManualClock, exposition, fake, load, make_collector, parse, series, value

PER_GPU = (
    "comfyui_gpu_info",
    "comfyui_gpu_memory_total_bytes",
    "comfyui_gpu_memory_free_bytes",
    "comfyui_gpu_memory_used_bytes",
    "comfyui_gpu_utilization_ratio",
    "comfyui_gpu_memory_utilization_ratio",
    "comfyui_gpu_temperature_celsius",
    "comfyui_gpu_power_watts",
    "comfyui_gpu_power_limit_watts",
    "comfyui_gpu_throttle_reasons",
    "comfyui_gpu_mig_enabled",
)


def gpu_logs(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("comfyui_exporter.gpu") and r.levelno >= level]


# -- one field failing -----------------------------------------------------------------------------
def test_a_failing_field_loses_only_that_series_and_is_counted() -> None:
    nvml = fake("mig_and_unsupported")
    collector = make_collector(nvml)
    first = parse(exposition(collector))
    nvml.advance()  # sample 1: GPU 0's temperature answers NVML_ERROR_UNKNOWN
    second = parse(exposition(collector))
    assert value(first, "comfyui_gpu_temperature_celsius", gpu="0") == 44
    assert series(second, "comfyui_gpu_temperature_celsius", gpu="0") == {}
    for name in ("comfyui_gpu_info", "comfyui_gpu_memory_free_bytes", "comfyui_gpu_power_watts"):
        assert series(second, name, gpu="0"), name
    assert value(second, "comfyui_gpu_up", gpu="0") == 1
    assert value(second, "comfyui_exporter_nvml_up") == 1
    assert value(first, "comfyui_exporter_nvml_errors_total", reason="unknown") == 0
    assert value(second, "comfyui_exporter_nvml_errors_total", reason="unknown") == 1


def test_not_supported_is_asked_once_and_counted_once() -> None:
    nvml = fake("mig_and_unsupported")
    collector = make_collector(nvml)
    for _ in range(6):
        samples = parse(exposition(collector))
    # MIG GPU 0: utilization; GTX 1050 Ti: power usage, power limit, MIG mode.
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason="not_supported") == 4
    assert nvml.calls["power_usage"] == 6 + 1  # GPU 0 every scrape, GPU 1 once
    assert nvml.calls["utilization_rates"] == 1 + 6
    assert series(samples, "comfyui_gpu_utilization_ratio", gpu="0") == {}
    assert series(samples, "comfyui_gpu_power_watts", gpu="1") == {}
    assert value(samples, "comfyui_gpu_mig_enabled", gpu="0") == 1
    assert series(samples, "comfyui_gpu_mig_enabled", gpu="1") == {}


def test_identity_fields_are_read_once_per_gpu() -> None:
    nvml = fake("server_8x_h100")
    collector = make_collector(nvml)
    for _ in range(5):
        exposition(collector)
    assert nvml.calls["name"] == 8 and nvml.calls["pci_bus_id"] == 8
    assert nvml.calls["uuid"] == 8 * 5  # read every scrape: it detects a swapped device


def test_units_are_converted_once() -> None:
    samples = parse(exposition(make_collector(fake("consumer_rtx4090"))))
    assert value(samples, "comfyui_gpu_power_watts") == pytest.approx(428.731)
    assert value(samples, "comfyui_gpu_power_limit_watts") == 450
    assert value(samples, "comfyui_gpu_utilization_ratio") == pytest.approx(0.98)
    assert value(samples, "comfyui_gpu_memory_utilization_ratio") == pytest.approx(0.61)
    assert value(samples, "comfyui_gpu_memory_total_bytes") == 24564 * 1024 * 1024
    assert value(samples, "comfyui_gpu_throttle_reasons", reason="sw_power_cap") == 1
    assert sum(series(samples, "comfyui_gpu_throttle_reasons").values()) == 1
    info = series(samples, "comfyui_gpu_info")
    (labels,) = info
    assert dict(labels) == {
        "gpu": "0",
        "uuid": load("consumer_rtx4090")["samples"][0]["devices"][0]["uuid"],
        "name": "NVIDIA GeForce RTX 4090",
        "pci_bus_id": "00000000:01:00.0",
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
    }


# -- a lost GPU ------------------------------------------------------------------------------------
LOST_DEVICES = SCENARIOS["gpu_lost_midrun"].devices


def test_a_lost_gpu_disappears_from_per_gpu_series_and_shows_in_up_and_present() -> None:
    nvml = fake("gpu_lost_midrun")
    lost_uuid = load("gpu_lost_midrun")["samples"][0]["devices"][2]["uuid"]
    collector = make_collector(nvml, LOST_DEVICES)
    before = parse(exposition(collector))
    assert all(series(before, name, gpu="2") for name in PER_GPU)
    for step in (1, 2):  # sample 1: live queries lost; sample 2: even the handle lookup fails
        nvml.advance()
        samples = parse(exposition(collector))
        for name in PER_GPU:
            assert series(samples, name, gpu="2") == {}, (step, name)
            assert series(samples, name, gpu="1"), (step, name)
        assert value(samples, "comfyui_gpu_up", gpu="2") == 0
        assert series(samples, "comfyui_gpu_up", gpu="2", uuid=lost_uuid)
        assert value(samples, "comfyui_exporter_gpus_present") == 3
        assert value(samples, "comfyui_exporter_gpus_expected") == 4
        assert value(samples, "comfyui_exporter_nvml_errors_total", reason="gpu_is_lost") == step
        # which ComfyUI lost its GPU stays answerable
        assert value(samples, "comfyui_device_gpu_info", comfyui="a100-2") == 1


def test_a_lost_gpu_logs_once_and_recovery_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    capture = load("gpu_lost_midrun")
    capture["samples"].append(copy.deepcopy(capture["samples"][0]))  # sample 3: GPU 2 answers again
    nvml = FakeNvml(capture)
    collector = make_collector(nvml)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            exposition(collector)
            nvml.advance()
        samples = parse(exposition(collector))
    lost = [r for r in gpu_logs(caplog, logging.ERROR) if "is lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].exc_info is None
    assert any("answers again" in r.getMessage() for r in gpu_logs(caplog))
    assert value(samples, "comfyui_gpu_up", gpu="2") == 1
    assert value(samples, "comfyui_exporter_gpus_present") == 4


def test_an_unreadable_uuid_makes_the_gpu_down_with_its_last_known_uuid() -> None:
    nvml = fake("xid_events")
    collector = make_collector(nvml)
    known = load("xid_events")["samples"][0]["devices"][1]["uuid"]
    exposition(collector)
    nvml.set_device_field(1, "uuid", {"error": "NO_PERMISSION"})
    samples = parse(exposition(collector))
    assert value(samples, "comfyui_gpu_up", gpu="1", uuid=known) == 0
    assert series(samples, "comfyui_gpu_info", gpu="1") == {}
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason="no_permission") == 1


# -- expected count --------------------------------------------------------------------------------
def test_expected_count_from_the_flag_wins() -> None:
    samples = parse(exposition(make_collector(fake("gpu_lost_midrun"), expected_gpus=8)))
    assert value(samples, "comfyui_exporter_gpus_expected") == 8
    assert value(samples, "comfyui_exporter_gpus_present") == 4


def test_expected_count_is_the_most_gpus_seen_and_a_vanished_index_is_down() -> None:
    capture = load("xid_events")
    one = copy.deepcopy(capture["samples"][0])
    one["device_count"], one["devices"] = 1, one["devices"][:1]
    capture["samples"] = [one, capture["samples"][0], copy.deepcopy(one)]
    nvml = FakeNvml(capture)
    collector = make_collector(nvml)
    seen = []
    for _ in range(3):
        samples = parse(exposition(collector))
        seen.append(
            (
                value(samples, "comfyui_exporter_gpus_expected"),
                value(samples, "comfyui_exporter_gpus_present"),
            )
        )
        nvml.advance()
    assert seen == [(1, 1), (2, 2), (2, 1)]
    assert value(samples, "comfyui_gpu_up", gpu="1") == 0


# -- NVML unavailable ------------------------------------------------------------------------------
def _raise(exc: BaseException):  # type: ignore[no-untyped-def]
    def fn(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return fn


def assert_nvml_off(collector: GpuCollector, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    for _ in range(3):
        samples = parse(exposition(collector))
    assert value(samples, "comfyui_exporter_nvml_up") == 0
    assert value(samples, "comfyui_exporter_gpus_present") == 0
    assert series(samples, "comfyui_exporter_gpus_expected") == {}
    assert not [k for k in samples if k[0].startswith("comfyui_gpu_")]
    loud = gpu_logs(caplog, logging.WARNING)
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert reason in loud[0].getMessage() and "--no-gpu" in loud[0].getMessage()
    assert all(r.exc_info is None for r in gpu_logs(caplog))
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason=reason) == 1  # not retried


def test_no_nvml_library_gives_nvml_up_0_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pynvml, "nvmlInit", _raise(pynvml.NVMLError_LibraryNotFound()))
    with caplog.at_level(logging.DEBUG):
        collector = build_gpu_collector(True, None, lambda: [])
        assert_nvml_off(collector, caplog, "library_not_found")
        collector.close()


@pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has libnvidia-ml")
def test_no_nvml_on_this_machine_for_real(caplog: pytest.LogCaptureFixture) -> None:
    """Unpatched nvidia-ml-py on a host without the driver library (this build host)."""
    with caplog.at_level(logging.DEBUG):
        collector = build_gpu_collector(True, None, lambda: [])
        assert_nvml_off(collector, caplog, "library_not_found")
        collector.close()


class FlakyInit(FakeNvml):
    """init() fails with the given NVML errors first, then works."""

    def __init__(self, capture: dict[str, Any], failures: list[str]) -> None:
        super().__init__(capture)
        self.failures = list(failures)

    def init(self) -> None:
        if self.failures:
            self.calls["init"] += 1
            raise pynvml.NVMLError(getattr(pynvml, "NVML_ERROR_" + self.failures.pop(0)))
        super().init()


def test_a_missing_library_is_not_retried() -> None:
    clock = ManualClock()
    nvml = FlakyInit(load("consumer_rtx4090"), ["LIBRARY_NOT_FOUND"])
    collector = make_collector(nvml, clock=clock, retry_interval_s=60)
    for _ in range(3):
        clock.now += 3600
        samples = parse(exposition(collector))
    assert nvml.calls["init"] == 1
    assert value(samples, "comfyui_exporter_nvml_up") == 0


def test_a_driver_that_is_not_loaded_yet_is_retried_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    nvml = FlakyInit(load("consumer_rtx4090"), ["DRIVER_NOT_LOADED", "DRIVER_NOT_LOADED"])
    with caplog.at_level(logging.DEBUG):
        collector = make_collector(nvml, clock=clock, retry_interval_s=60)
        assert value(parse(exposition(collector)), "comfyui_exporter_nvml_up") == 0
        clock.now += 59
        exposition(collector)
        assert nvml.calls["init"] == 1  # not before the retry interval
        clock.now += 2
        exposition(collector)
        assert nvml.calls["init"] == 2
        clock.now += 61
        samples = parse(exposition(collector))
    assert nvml.calls["init"] == 3
    assert value(samples, "comfyui_exporter_nvml_up") == 1
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason="driver_not_loaded") == 2
    assert len(gpu_logs(caplog, logging.WARNING)) == 1
    assert any("NVML initialised" in r.getMessage() for r in gpu_logs(caplog, logging.INFO))


def test_nvml_failing_mid_run_marks_everything_down_then_reinitialises() -> None:
    clock = ManualClock()
    nvml = fake("consumer_rtx4090")
    collector = make_collector(nvml, clock=clock, retry_interval_s=60)
    uuid = load("consumer_rtx4090")["samples"][0]["devices"][0]["uuid"]
    assert value(parse(exposition(collector)), "comfyui_exporter_nvml_up") == 1
    real = nvml.device_count
    nvml.device_count = _raise(pynvml.NVMLError_LibRmVersionMismatch())  # type: ignore[method-assign]
    samples = parse(exposition(collector))
    assert value(samples, "comfyui_exporter_nvml_up") == 0
    assert value(samples, "comfyui_gpu_up", gpu="0", uuid=uuid) == 0
    assert value(samples, "comfyui_exporter_gpus_present") == 0
    assert value(samples, "comfyui_exporter_gpus_expected") == 1
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason="lib_rm_version_mismatch") == 1
    assert nvml.calls["shutdown"] == 1 and nvml.calls["xid_close"] == 1
    nvml.device_count = real  # type: ignore[method-assign]
    clock.now += 61
    samples = parse(exposition(collector))
    assert value(samples, "comfyui_exporter_nvml_up") == 1
    assert value(samples, "comfyui_gpu_up", gpu="0") == 1
    assert nvml.calls["init"] == 2


# -- never raise -----------------------------------------------------------------------------------
FAULTS = [
    pynvml.NVMLError_GpuIsLost(),
    pynvml.NVMLError_NotSupported(),
    pynvml.NVMLError_Unknown(),
    pynvml.NVMLError_Uninitialized(),
    pynvml.NVMLError_NoPermission(),
    pynvml.NVMLError(4242),  # a code this nvidia-ml-py does not know
    RuntimeError("bug"),
    KeyError("x"),
    "garbage",  # returned instead of raised
    None,
    -1,
]
METHODS = [
    *DEVICE_FIELDS,
    "device_count",
    "driver_version",
    "cuda_driver_version",
    "init",
    "xid_register",
    "xid_wait",
]


class Faulty(FakeNvml):
    """FakeNvml where some methods raise or return nonsense."""

    def __init__(self, capture: dict[str, Any], faults: dict[str, Any]) -> None:
        self.faults = faults
        super().__init__(capture)

    def __getattribute__(self, name: str) -> Any:
        faults = object.__getattribute__(self, "faults") if name != "faults" else None
        if faults and name in faults:
            fault = faults[name]
            if isinstance(fault, BaseException):
                return _raise(fault)
            return lambda *_a, **_k: fault
        return object.__getattribute__(self, name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    faults=st.dictionaries(st.sampled_from(METHODS), st.sampled_from(FAULTS), max_size=4),
    fixture=st.sampled_from(["server_8x_h100", "gpu_lost_midrun", "mig_and_unsupported"]),
    devices_fail=st.booleans(),
)
def test_collect_never_raises_and_always_exports_nvml_up(
    faults: dict[str, Any], fixture: str, devices_fail: bool
) -> None:
    def devices() -> list[ComfyDevice]:
        if devices_fail:
            raise RuntimeError("core bug")
        return list(SCENARIOS[fixture].devices)

    nvml = Faulty(load(fixture), faults)
    collector = make_collector(nvml, devices)
    for _ in range(2):
        nvml.advance()
        if collector.xid_watcher is not None:
            collector.xid_watcher.step()
        samples = parse(exposition(collector))
        assert value(samples, "comfyui_exporter_nvml_up") in (0, 1)
        assert series(samples, "comfyui_exporter_nvml_collect_duration_seconds")
    collector.close()


def test_a_failing_device_provider_does_not_cost_the_gpu_series(caplog: pytest.LogCaptureFixture) -> None:
    def devices() -> list[ComfyDevice]:
        raise RuntimeError("core bug")

    collector = make_collector(fake("consumer_rtx4090"), devices)
    with caplog.at_level(logging.WARNING):
        exposition(collector)
        samples = parse(exposition(collector))
    assert value(samples, "comfyui_gpu_up", gpu="0") == 1
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason="exception") == 2
    assert len(gpu_logs(caplog, logging.WARNING)) == 1


def test_devices_with_list_argv_or_garbage_do_not_cost_the_gpu_series() -> None:
    as_list = ComfyDevice("x", "cuda:0 NVIDIA GeForce RTX 4090 : native", "cuda", 0, None, ["main.py"], None)  # type: ignore[arg-type]
    samples = parse(exposition(make_collector(fake("consumer_rtx4090"), [as_list])))
    assert value(samples, "comfyui_device_gpu_info", comfyui="x", gpu="0") == 1
    samples = parse(exposition(make_collector(fake("consumer_rtx4090"), ["not a device"])))  # type: ignore[list-item]
    assert value(samples, "comfyui_gpu_up", gpu="0") == 1
    assert value(samples, "comfyui_exporter_nvml_errors_total", reason="exception") == 1


# -- lifecycle -------------------------------------------------------------------------------------
def test_disabled_exports_nothing_and_never_touches_nvml() -> None:
    nvml = fake("server_8x_h100")
    collector = build_gpu_collector(False, 8, lambda: [], nvml=nvml)
    assert exposition(collector) == ""
    assert list(collector.describe()) == []
    collector.close()
    assert sum(nvml.calls.values()) == 0


def test_registering_does_not_call_nvml_and_reserves_the_names() -> None:
    nvml = fake("server_8x_h100")
    collector = GpuCollector(nvml, devices=list)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    assert sum(nvml.calls.values()) == 0
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(GpuCollector(fake("server_8x_h100"), devices=list))


def test_build_gpu_collector_matches_the_contract() -> None:
    params = list(inspect.signature(build_gpu_collector).parameters)
    assert params == ["enabled", "expected_gpus", "devices", "nvml"]
    with pytest.raises(ValueError):
        GpuCollector(fake("consumer_rtx4090"), expected_gpus=-1)


def test_the_xid_thread_records_events_and_close_stops_it() -> None:
    nvml = fake("xid_events")
    collector = build_gpu_collector(True, None, lambda: [], nvml=nvml)
    watcher = collector.xid_watcher
    assert watcher is not None and watcher.running
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not series(
        parse(exposition(collector)), "comfyui_gpu_xid_errors_total"
    ):
        time.sleep(0.01)
    samples = parse(exposition(collector))
    assert value(samples, "comfyui_gpu_xid_errors_total", gpu="0", xid="13") == 1
    assert time.time() - value(samples, "comfyui_gpu_last_xid_timestamp_seconds", xid="13") < 60
    started = time.monotonic()
    collector.close()
    assert time.monotonic() - started < 2
    assert not watcher.running
    assert nvml.calls["shutdown"] == 1 and nvml.calls["xid_close"] == 1
    assert exposition(collector) == ""
    collector.close()  # idempotent
    assert nvml.calls["shutdown"] == 1


def test_concurrent_scrapes_are_serialised_and_consistent() -> None:
    collector = make_collector(
        fake("server_8x_h100"), SCENARIOS["server_8x_h100"].devices, timer=time.perf_counter
    )

    def scrape(_: int) -> str:
        text = exposition(collector)
        return "\n".join(line for line in text.splitlines() if "collect_duration" not in line)

    with ThreadPoolExecutor(8) as pool:
        results = set(pool.map(scrape, range(64)))
    assert len(results) == 1


# -- cost ------------------------------------------------------------------------------------------
def test_collect_for_8_gpus_is_cheap(capsys: pytest.CaptureFixture[str]) -> None:
    """The collector's own cost on 8 fake GPUs (NVML's own time is not in it: see docs/gpu.md)."""
    collector = GpuCollector(
        fake("server_8x_h100"),
        devices=lambda: list(SCENARIOS["server_8x_h100"].devices),
        start_xid_thread=False,
    )
    collector.start()
    for _ in range(5):
        list(collector.collect())
    durations = []
    for _ in range(300):
        start = time.perf_counter()
        list(collector.collect())
        durations.append(time.perf_counter() - start)
    durations.sort()
    median, p95 = statistics.median(durations), durations[int(len(durations) * 0.95)]
    with capsys.disabled():
        print(f"\ncollect() for 8 fake GPUs: median {median * 1e3:.3f} ms, p95 {p95 * 1e3:.3f} ms")
    assert median < 0.02, f"median {median * 1e3:.1f} ms"
    collector.close()


def test_scrapes_from_threads_never_see_a_half_built_state() -> None:
    """A scrape while NVML goes down in another scrape sees either the old or the new state."""
    nvml = fake("server_8x_h100")
    collector = make_collector(nvml, timer=time.perf_counter)
    stop = threading.Event()
    errors: list[BaseException] = []

    def scraper() -> None:
        while not stop.is_set():
            try:
                up = value(parse(exposition(collector)), "comfyui_exporter_nvml_up")
                assert up in (0, 1)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=scraper) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
