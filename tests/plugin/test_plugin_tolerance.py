"""Version tolerance: a missing hook point disables that part only; the rest keeps working."""

from __future__ import annotations

import shutil
import types
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from comfyui_exporter.cli.plugin_install import plugin_source
from comfyui_exporter.comfyui_plugin.bootstrap import install

from .harness import ComfyWorld, graph
from .test_plugin_tap import events, kinds


def _run_one(world: ComfyWorld) -> str:
    prompt_id = world.submit({"prompt": graph("sleep", seconds=0.01, steps=2)}).json()["prompt_id"]
    world.wait_idle()
    assert world.history(prompt_id)["status"]["status_str"] == "success"
    return prompt_id


def test_without_progress_registry_the_queue_and_validation_still_work(comfyui_dir: Path) -> None:
    def older_comfyui(mods: dict[str, types.ModuleType]) -> None:
        import sys
        sys.modules["comfy_execution.progress"] = types.ModuleType("comfy_execution.progress")

    world = ComfyWorld(comfyui_dir, tamper=older_comfyui).start()
    try:
        assert world.tap.hooks["progress"].startswith("disabled")
        assert world.tap.hooks["queue.put"] == world.tap.hooks["validation"] == "active"
        prompt_id = _run_one(world)
        assert kinds(events(world), prompt_id) == ["prompt_submitted", "prompt_started", "prompt_finished"]
        assert world.submit({"prompt": {"1": {"inputs": {}}}}).status_code == 400
        assert kinds(events(world))[-1] == "prompt_rejected"
    finally:
        world.stop()


def test_without_on_prompt_handlers_other_rejections_are_still_seen(comfyui_dir: Path) -> None:
    def no_handlers(mods: dict[str, types.ModuleType]) -> None:
        del mods["server"].PromptServer.add_on_prompt_handler

    world = ComfyWorld(comfyui_dir, tamper=no_handlers).start()
    try:
        assert world.tap.hooks["submissions"].startswith("disabled")
        assert world.submit({"client_id": "x"}).status_code == 400  # no_prompt: not visible now
        assert world.submit({"prompt": {"1": {"inputs": {}}}}).status_code == 400
        assert [e["error_type"] for e in events(world)] == ["invalid_prompt"]
        prompt_id = _run_one(world)
        assert "node_finished" in kinds(events(world), prompt_id)
    finally:
        world.stop()


def test_install_on_a_bare_server_marks_every_missing_part(standin: dict[str, Any]) -> None:
    server = types.SimpleNamespace(routes=web.RouteTableDef())  # no queue, no handlers
    modules = {"server": types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=server))}
    tap = install(modules)
    assert tap is not None and tap.hooks["route"] == "active"
    assert {k for k, v in tap.hooks.items() if v.startswith("disabled")} == {
        "queue", "validation", "submissions", "progress"}
    assert len(list(server.routes)) == 2
    assert install({}) is None  # not inside ComfyUI at all


def test_install_survives_a_hook_point_that_raises(standin: dict[str, Any]) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"no {name} today")

    server = types.SimpleNamespace(routes=web.RouteTableDef(), prompt_queue=Exploding(),
                                   add_on_prompt_handler=lambda h: None)
    tap = install({"server": types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=server)),
                   "execution": standin["execution"],
                   "comfy_execution.progress": standin["comfy_execution.progress"]})
    assert tap.hooks["queue"].startswith("disabled: RuntimeError")
    assert tap.hooks["validation"] == tap.hooks["progress"] == tap.hooks["submissions"] == "active"


def test_a_second_copy_of_the_pack_reuses_the_tap(comfyui_dir: Path) -> None:
    shutil.copytree(plugin_source(), comfyui_dir / "custom_nodes" / "ComfyUI-exporter-copy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    world = ComfyWorld(comfyui_dir, also_load=("ComfyUI-exporter-copy",)).start()  # add_routes must not fail
    try:
        prompt_id = _run_one(world)
        assert kinds(events(world), prompt_id).count("prompt_started") == 1  # hooked once
        r = requests.get(world.url + "/comfyui-exporter/v1/status", timeout=5)
        assert r.json()["boot_id"] == world.tap.ring.boot_id
    finally:
        world.stop()


def test_disabled_by_environment(comfyui_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("COMFYUI_EXPORTER_PLUGIN_DISABLE", "1")
    world = ComfyWorld(comfyui_dir).start()
    try:
        assert world.tap is None
        assert requests.get(world.url + "/comfyui-exporter/v1/events", timeout=5).status_code == 404
        assert "ComfyUIExporterVRAMGuard" in world.mods["nodes"].NODE_CLASS_MAPPINGS
        _run_one(world)
    finally:
        world.stop()
