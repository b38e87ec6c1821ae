"""PynvmlNvml (the real NVML layer) against monkeypatched nvidia-ml-py functions."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from comfyui_exporter.gpu.capture import capture
from comfyui_exporter.gpu.source.nvml import MemoryInfo, PynvmlNvml, Utilization, XidEvent

from .pynvml_patch import PynvmlFromCapture, handle
from .support import FIXTURES, load

SYNTHETIC = sorted(p.stem for p in FIXTURES.glob("*.json") if load(p.stem)["samples"])


@pytest.fixture
def h100(monkeypatch: pytest.MonkeyPatch) -> tuple[PynvmlNvml, PynvmlFromCapture]:
    patched = PynvmlFromCapture(load("server_8x_h100")).install(monkeypatch)
    nvml = PynvmlNvml()
    nvml.init()
    return nvml, patched


def test_values_come_back_in_nvml_units_with_bytes_decoded(
    h100: tuple[PynvmlNvml, PynvmlFromCapture],
) -> None:
    nvml, _ = h100
    dev = load("server_8x_h100")["samples"][0]["devices"][5]
    assert nvml.pci_bus_id(5) == "00000000:AB:00.0"
    assert nvml.uuid(5) == dev["uuid"]
    assert nvml.memory_info(5) == MemoryInfo(**dev["memory_info"])
    assert nvml.utilization_rates(5) == Utilization(**dev["utilization_rates"])
    assert nvml.power_usage(5) == dev["power_usage"]  # milliwatts, converted by the collector only
    assert nvml.clocks_event_reasons(5) == 0x20
    assert nvml.mig_mode(5) == (0, 0)
    assert nvml.driver_version() == "550.90.07" and nvml.cuda_driver_version() == 12040


def test_a_bus_id_as_bytes_from_older_nvidia_ml_py_is_decoded(
    h100: tuple[PynvmlNvml, PynvmlFromCapture], monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml, _ = h100
    monkeypatch.setattr(pynvml, "nvmlDeviceGetPciInfo", lambda _h: SimpleNamespace(busId=b"00000000:AB:00.0"))
    assert nvml.pci_bus_id(5) == "00000000:AB:00.0"


def test_handles_are_looked_up_once_per_index(h100: tuple[PynvmlNvml, PynvmlFromCapture]) -> None:
    nvml, patched = h100
    for _ in range(3):
        nvml.temperature(2)
        nvml.power_usage(2)
    assert patched.calls["nvmlDeviceGetHandleByIndex"] == 1
    nvml.init()  # a new NVML session invalidates handles
    nvml.temperature(2)
    assert patched.calls["nvmlDeviceGetHandleByIndex"] == 2


def test_a_failed_handle_lookup_is_retried_next_time(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = load("consumer_rtx4090")
    capture["samples"][0]["devices"][0]["handle"] = {"error": "GPU_IS_LOST"}
    patched = PynvmlFromCapture(capture).install(monkeypatch)
    nvml = PynvmlNvml()
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        nvml.uuid(0)
    del capture["samples"][0]["devices"][0]["handle"]
    assert nvml.uuid(0).startswith("GPU-")
    assert patched.calls["nvmlDeviceGetHandleByIndex"] == 2


def test_errors_are_the_real_nvml_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    PynvmlFromCapture(load("mig_and_unsupported")).install(monkeypatch)
    nvml = PynvmlNvml()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.utilization_rates(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.power_usage(1)


def _function_not_found(*_args: Any) -> Any:
    raise pynvml.NVMLError_FunctionNotFound()


@pytest.mark.parametrize(
    ("field", "old", "new"),
    [
        (
            "clocks_event_reasons",
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ),
        ("temperature", "nvmlDeviceGetTemperature", "nvmlDeviceGetTemperatureV"),
    ],
)
def test_a_function_the_driver_lacks_falls_back_once(
    monkeypatch: pytest.MonkeyPatch, field: str, old: str, new: str
) -> None:
    patched = PynvmlFromCapture(load("server_8x_h100")).install(monkeypatch)
    monkeypatch.setattr(pynvml, old, patched._counted(old, _function_not_found))
    nvml = PynvmlNvml()
    expected = load("server_8x_h100")["samples"][0]["devices"][5][field]
    assert [getattr(nvml, field)(5) for _ in range(3)] == [expected] * 3
    assert patched.calls[old] == 1 and patched.calls[new] == 3


def test_other_errors_do_not_trigger_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    patched = PynvmlFromCapture(load("server_8x_h100")).install(monkeypatch)

    def lost(*_args: Any) -> Any:
        raise pynvml.NVMLError_GpuIsLost()

    monkeypatch.setattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", lost)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        PynvmlNvml().clocks_event_reasons(0)
    assert patched.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 0


def test_xid_events_map_back_to_index_and_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = load("xid_events")
    capture["xid"]["events"].append({"sample": 1, "index": 1, "xid": 1, "event_type": 0x4})  # a P-state event
    patched = PynvmlFromCapture(capture).install(monkeypatch)
    nvml = PynvmlNvml()
    nvml.init()
    assert nvml.xid_wait(10) is None  # nothing registered yet
    nvml.xid_register(0)
    nvml.xid_register(1)
    assert patched.registered == [(0, 8), (1, 8)]  # nvmlEventTypeXidCriticalError
    uuids = [d["uuid"] for d in capture["samples"][0]["devices"]]
    got = [nvml.xid_wait(10) for _ in range(6)]
    assert got == [
        XidEvent(0, uuids[0], 13),
        XidEvent(1, uuids[1], 94),
        XidEvent(1, uuids[1], 94),
        XidEvent(0, uuids[0], 13),
        None,  # not an XID event
        None,  # NVML_ERROR_TIMEOUT
    ]
    nvml.xid_close()
    assert nvml.xid_wait(10) is None


def test_an_event_from_an_unregistered_handle_asks_nvml_for_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    capture = load("xid_events")
    capture["xid"]["events"] = [{"index": 1, "xid": 48}]
    patched = PynvmlFromCapture(capture).install(monkeypatch)
    nvml = PynvmlNvml()
    nvml.xid_register(0)
    event = nvml.xid_wait(10)
    assert event is not None and event.index == 1 and event.xid == 48
    assert patched.calls["nvmlDeviceGetIndex"] == 1
    assert handle(1)  # a non-null pointer


@pytest.mark.parametrize("name", SYNTHETIC)
def test_capturing_through_the_real_layer_reproduces_each_fixture(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The capture script + PynvmlNvml + patched pynvml round-trip sample 0 of every fixture exactly."""
    fixture = load(name)
    PynvmlFromCapture(copy.deepcopy(fixture)).install(monkeypatch)
    out, status = capture(PynvmlNvml(), samples=1, interval=0.0)
    assert status == 0
    assert out["system"] == fixture["system"]
    got, want = dict(out["samples"][0]), dict(fixture["samples"][0])
    got.pop("t"), want.pop("t")
    assert got == want
    assert out["xid"]["register"] == fixture["xid"]["register"]
