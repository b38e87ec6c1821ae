"""The "Health Check: VRAM" node: pass-through, warn / free / fail, CPU no-op, inside a prompt."""

from __future__ import annotations

import math
from typing import Any

import pytest

from comfyui_exporter.comfyui_plugin import tap as tap_module
from comfyui_exporter.comfyui_plugin.guard import (
    ANY,
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    VRAMGuard,
    VRAMGuardError,
)
from comfyui_exporter.comfyui_plugin.tap import Tap

from .harness import ComfyWorld, guard_graph
from .test_plugin_tap import events

GIB = 1 << 30


@pytest.fixture
def mm(standin: dict[str, Any]) -> Any:
    return standin["comfy.model_management"]


@pytest.fixture
def tap() -> Tap:
    t = Tap()
    tap_module.set_current(t)
    return t


def trips(t: Tap) -> list[dict[str, Any]]:
    return [e for e in t.ring.snapshot(0, 100)[2] if e["kind"] == "vram_guard_trip"]


def test_node_definition_follows_comfyui_conventions() -> None:
    assert {"ComfyUIExporterVRAMGuard": VRAMGuard} == NODE_CLASS_MAPPINGS
    assert NODE_DISPLAY_NAME_MAPPINGS == {"ComfyUIExporterVRAMGuard": "Health Check: VRAM"}
    required = VRAMGuard.INPUT_TYPES()["required"]
    assert required["action"][0] == ["warn", "free", "fail"] and required["threshold_mb"][0] == "INT"
    # ComfyUI accepts a link when `not received_type != input_type`: the wildcard matches every type.
    assert ANY == "*" and (ANY != "MODEL") is False and (ANY != "LATENT") is False
    assert VRAMGuard.RETURN_TYPES == (ANY,) and callable(getattr(VRAMGuard, VRAMGuard.FUNCTION))
    assert math.isnan(VRAMGuard.IS_CHANGED(threshold_mb=1, action="warn"))  # always re-checked
    full_name = f"{VRAMGuardError.__module__}.{VRAMGuardError.__qualname__}"
    assert full_name == "comfyui_exporter_plugin.VRAMGuardError"


def test_enough_memory_passes_through_without_a_trip(mm: Any, tap: Tap) -> None:
    mm.configure(free=4 * GIB)
    value = object()
    assert VRAMGuard().check(value, 2048, "fail")[0] is value
    assert trips(tap) == [] and tap.guard_checks == 1


def test_warn_records_a_trip_and_continues(mm: Any, tap: Tap) -> None:
    mm.configure(free=GIB)
    value = {"model": "x"}
    assert VRAMGuard().check(value, 2048, "warn")[0] is value
    [trip] = trips(tap)
    assert (trip["action"], trip["outcome"], trip["free_bytes"], trip["required_bytes"]) == (
        "warn", "warned", GIB, 2 * GIB)
    assert trip["device"] == "cuda:0" and "1.00 GiB free" in trip["message"]
    assert [t["outcome"] for t in tap.recent_trips] == ["warned"]  # the /status "failures" list
    assert not any(c[0] in ("free_memory", "unload_all_models") for c in mm.calls)


def test_free_unloads_models_and_reports_recovered(mm: Any, tap: Tap) -> None:
    mm.configure(free=GIB, loaded=[3 * GIB])
    VRAMGuard().check("v", 2048, "free")
    assert ("free_memory", 2 * GIB, "cuda:0") in mm.calls and ("soft_empty_cache",) in mm.calls
    [trip] = trips(tap)
    assert trip["outcome"] == "recovered" and trip["free_after_bytes"] == 4 * GIB


def test_free_reports_insufficient_when_unloading_is_not_enough(mm: Any, tap: Tap) -> None:
    mm.configure(free=GIB, loaded=[], cached=256 << 20)
    assert VRAMGuard().check("v", 2048, "free") == ("v",)  # does not stop the prompt
    [trip] = trips(tap)
    assert trip["outcome"] == "insufficient" and trip["free_after_bytes"] == GIB + (256 << 20)


def test_fail_raises_naming_free_and_required(mm: Any, tap: Tap) -> None:
    mm.configure(free=GIB + GIB // 2)
    with pytest.raises(VRAMGuardError, match=r"1\.50 GiB free on cuda:0, 6\.00 GiB required"):
        VRAMGuard().check("v", 6144, "fail")
    assert [t["outcome"] for t in trips(tap)] == ["failed"]


def test_cpu_is_a_no_op(mm: Any, tap: Tap) -> None:
    mm.configure(device_type="cpu", free=1)
    assert VRAMGuard().check("v", 10**6, "fail") == ("v",)
    assert trips(tap) == [] and not any(c[0] == "get_free_memory" for c in mm.calls)


def test_works_without_the_tap(mm: Any) -> None:
    mm.configure(free=GIB)
    with pytest.raises(VRAMGuardError):
        VRAMGuard().check("v", 2048, "fail")


def test_guard_inside_a_prompt(world: ComfyWorld) -> None:
    mm = world.mods["comfy.model_management"]
    mm.configure(free=GIB)
    warn = [world.submit({"prompt": guard_graph(2048, "warn")}).json()["prompt_id"] for _ in range(2)]
    world.wait_idle()
    fail = world.submit({"prompt": guard_graph(2048, "fail")}).json()["prompt_id"]
    world.wait_idle()
    assert [world.history(p)["status"]["status_str"] for p in warn] == ["success", "success"]
    error = world.history(fail)["status"]["messages"][-1]
    assert error[0] == "execution_error" and error[1]["node_type"] == "ComfyUIExporterVRAMGuard"
    assert error[1]["exception_type"] == "comfyui_exporter_plugin.VRAMGuardError"
    assert "1.00 GiB free" in error[1]["exception_message"]
    found = [(e["prompt_id"], e["node_id"], e["outcome"])
             for e in events(world) if e["kind"] == "vram_guard_trip"]
    assert found == [(warn[0], "2", "warned"), (warn[1], "2", "warned"), (fail, "2", "failed")]
