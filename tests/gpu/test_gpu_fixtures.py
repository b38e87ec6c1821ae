"""The golden captures are well-formed and in NVML's units (a hand edit must not slip in W for mW)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from comfyui_exporter.gpu.fake import load_capture
from comfyui_exporter.gpu.source.nvml import DEVICE_FIELDS, ERROR_NAMES

from .support import FIXTURES

FILES = sorted(FIXTURES.glob("*.json"))
UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BUS_ID = re.compile(r"^[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]$")
ERRORS = {name.upper() for name in ERROR_NAMES.values()}
MIB = 1024 * 1024


def is_error(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def check_device(dev: dict[str, Any]) -> None:
    if "handle" in dev:
        assert set(dev) == {"handle"} and is_error(dev["handle"])
        return
    assert set(dev) == set(DEVICE_FIELDS), set(dev) ^ set(DEVICE_FIELDS)
    for key, val in dev.items():
        if is_error(val):
            assert val["error"] in ERRORS, val
            continue
        if key == "uuid":
            assert UUID.match(val), val
        elif key == "pci_bus_id":
            assert BUS_ID.match(val), val
        elif key == "name":
            assert isinstance(val, str) and val
        elif key == "memory_info":
            assert val["total"] == val["free"] + val["used"]  # v1 semantics
            assert val["total"] >= 1024 * MIB and val["total"] % MIB == 0, "bytes, a whole number of MiB"
        elif key == "utilization_rates":
            assert set(val) == {"gpu", "memory"} and all(0 <= v <= 100 for v in val.values())
        elif key == "temperature":
            assert 0 < val < 120
        elif key in ("power_usage", "enforced_power_limit"):
            assert 1_000 <= val <= 1_500_000, f"{key}={val} is not milliwatts of a GPU board"
        elif key == "clocks_event_reasons":
            assert 0 <= val < 0x800
        elif key == "mig_mode":
            assert isinstance(val, list) and len(val) == 2 and set(val) <= {0, 1}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_capture_is_well_formed_and_in_nvml_units(path) -> None:  # type: ignore[no-untyped-def]
    data = load_capture(path)
    assert data["provenance"]["kind"] in ("captured", "synthetic")
    if data["init"]:
        assert data["init"]["error"] in ERRORS and data["samples"] == []
        return
    assert re.match(r"^\d{3}\.\d+(\.\d+)?$", data["system"]["driver_version"])
    assert 10000 <= data["system"]["cuda_driver_version"] <= 20000  # 12040 = CUDA 12.4
    uuids: dict[int, str] = {}
    for sample in data["samples"]:
        assert sample["device_count"] == len(sample["devices"])
        for index, dev in enumerate(sample["devices"]):
            check_device(dev)
            if isinstance(dev.get("uuid"), str):
                assert uuids.setdefault(index, dev["uuid"]) == dev["uuid"], (
                    "a GPU keeps its uuid across samples"
                )
        for dev in sample["devices"]:
            if isinstance(dev.get("power_usage"), int) and isinstance(dev.get("enforced_power_limit"), int):
                assert dev["power_usage"] <= dev["enforced_power_limit"] * 1.1
    for key, outcome in data["xid"]["register"].items():
        assert int(key) < data["samples"][0]["device_count"] and (outcome is None or is_error(outcome))
    for event in data["xid"]["events"]:
        assert 0 <= event["sample"] < len(data["samples"])
        assert uuids[event["index"]] == event["uuid"] and 1 <= event["xid"] < 1000


def test_every_fixture_is_described_in_the_readme() -> None:
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    for path in FILES:
        assert f"`{path.name}`" in readme, path.name
        kind = load_capture(path)["provenance"]["kind"]
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.name}`"))
        assert kind in row, f"README row for {path.name} must say it is {kind}"


def test_synthetic_units_check_catches_watts() -> None:
    dev = load_capture(FIXTURES / "consumer_rtx4090.json")["samples"][0]["devices"][0]
    dev = {**dev, "power_usage": 428}  # watts by mistake
    with pytest.raises(AssertionError, match="milliwatts"):
        check_device(dev)
    dev = {**dev, "power_usage": 428731, "memory_info": {"total": 24564, "free": 10000, "used": 14564}}  # MiB
    with pytest.raises(AssertionError, match="bytes"):
        check_device(dev)
