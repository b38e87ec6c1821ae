"""The event tap inside a stand-in ComfyUI 0.8.0: rejections, lifecycle, nodes, progress, safety."""

from __future__ import annotations

import time
from typing import Any

import requests

from comfyui_exporter.comfyui_plugin.hooks import QueueHooks
from comfyui_exporter.comfyui_plugin.tap import Tap

from .harness import ComfyWorld, graph, recorded_submissions

EVENTS = "/comfyui-exporter/v1/events"


def events(world: ComfyWorld, after: int = 0, **params: Any) -> list[dict[str, Any]]:
    r = requests.get(world.url + EVENTS, params={"after": after, "limit": 5000, **params}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def kinds(evs: list[dict[str, Any]], prompt_id: str | None = None) -> list[str]:
    return [e["kind"] for e in evs if prompt_id is None or e.get("prompt_id") == prompt_id]


def test_plugin_loads_like_a_custom_node_and_hooks_everything(world: ComfyWorld) -> None:
    assert world.plugin is not None and world.plugin.__name__.endswith("comfyui-exporter-plugin")
    assert "ComfyUIExporterVRAMGuard" in world.mods["nodes"].NODE_CLASS_MAPPINGS
    assert world.tap.hooks == {"route": "active", "queue.put": "active", "queue.get": "active",
                               "queue.task_done": "active", "validation": "active",
                               "submissions": "active", "progress": "active"}
    r = requests.get(world.url + "/api/comfyui-exporter/v1/status", timeout=5)  # /api copy too
    assert r.status_code == 200 and r.json()["boot_id"] == world.tap.ring.boot_id


def test_every_recorded_validation_rejection_becomes_an_event(world: ComfyWorld) -> None:
    cases = recorded_submissions()
    assert len(cases) == 14
    for case in cases:
        before = world.tap.ring.seq
        resp = world.submit(case["request_body"])
        assert resp.status_code == case["status"], case.get("label")
        new = events(world, before)
        expected = case["response"] if case["status"] == 400 else None
        if expected is None:  # a body that is not JSON: ComfyUI answers 500 before any hook
            assert new == []
            continue
        assert [e["kind"] for e in new] == ["prompt_rejected"], case.get("label")
        ev = new[0]
        assert ev["error_type"] == expected["error"]["type"] and ev["partial"] is False
        want = [(nid, n["class_type"], err["type"], err["extra_info"].get("input_name"))
                for nid, n in expected["node_errors"].items() for err in n["errors"]]
        got = [(e["node_id"], e["node_type"], e["type"], e["input_name"]) for e in ev["node_errors"]]
        assert got == want, case.get("label")
    rejected = events(world)
    by_label = {c.get("label"): c for c in cases}
    ckpt = next(e for e in rejected if e["node_errors"] and e["node_errors"][0]["input_name"] == "ckpt_name")
    assert ckpt["node_errors"][0]["node_type"] == "CheckpointLoaderSimple"
    assert "does_not_exist.safetensors" in ckpt["node_errors"][0]["details"]
    unknown = [e for e in rejected if e["error_type"] == "invalid_prompt" and e.get("node_type")]
    assert [e["node_type"] for e in unknown] == ["NoSuchNodeType"]
    assert sum(e["error_type"] == "no_prompt" for e in rejected) == 2
    assert "no prompt key" in by_label and world.tap.errors == 0


def test_prompt_lifecycle_nodes_and_progress_without_client_id(world: ComfyWorld) -> None:
    world.tap.progress_interval = 0.0  # every update
    resp = world.submit({"prompt": graph("sleep", seconds=0.2, steps=4)})  # no client_id
    prompt_id = resp.json()["prompt_id"]
    world.wait_idle()
    evs = [e for e in events(world) if e.get("prompt_id") == prompt_id]
    assert kinds(evs) == ["prompt_submitted", "prompt_started",
                          "node_started", "node_finished", "node_started"] + ["progress"] * 4 + [
                          "node_finished", "node_started", "node_finished", "prompt_finished"]
    submitted, started, finished = evs[0], evs[1], evs[-1]
    create = world.history(prompt_id)["prompt"][3]["create_time"]
    assert submitted["create_time_ms"] == create and submitted["has_client_id"] is False
    assert 0 <= started["queue_wait_s"] < 2
    assert abs(started["ts"] - create / 1000 - started["queue_wait_s"]) < 1e-3
    assert finished["status"] == "success" and 0.2 <= finished["seconds"] < 2
    sleep_node = next(e for e in evs if e["kind"] == "node_finished" and e["node_id"] == "2")
    assert sleep_node["node_type"] == "FaultInjection" and 0.2 <= sleep_node["seconds"] < 1.5
    assert [e["value"] for e in evs if e["kind"] == "progress"] == [1, 2, 3, 4]


def test_progress_is_thinned_but_keeps_first_and_last(world: ComfyWorld) -> None:
    world.tap.progress_interval = 10.0
    prompt_id = world.submit({"prompt": graph("sleep", seconds=0.05, steps=50)}).json()["prompt_id"]
    world.wait_idle()
    values = [e["value"] for e in events(world) if e["kind"] == "progress" and e["prompt_id"] == prompt_id]
    assert values == [1, 50]


def test_failures_interrupts_and_cached_nodes(world: ComfyWorld) -> None:
    oom = world.submit({"prompt": graph("oom")}).json()["prompt_id"]
    stop = world.submit({"prompt": graph("interrupt")}).json()["prompt_id"]
    ok = world.submit({"prompt": graph("pass", salt=7)}).json()["prompt_id"]
    world.wait_idle()
    again = world.submit({"prompt": graph("pass", salt=7)}).json()["prompt_id"]  # fully cached
    world.wait_idle()
    evs = events(world)
    done = {e["prompt_id"]: e for e in evs if e["kind"] == "prompt_finished"}
    assert done[oom]["status"] == "error" and done[oom]["node_type"] == "FaultInjection"
    assert done[oom]["exception_type"] == "torch.OutOfMemoryError"
    assert done[oom]["message"].startswith("CUDA out of memory")
    assert done[stop]["status"] == "interrupted" and done[stop]["node_id"] == "2"
    assert done[ok]["status"] == done[again]["status"] == "success"
    assert kinds(evs, again) == ["prompt_submitted", "prompt_started", "prompt_finished"]
    assert "node_finished" in kinds(evs, ok)


def test_a_broken_tap_never_fails_or_blocks_a_prompt(world: ComfyWorld) -> None:
    def explode(*_a: Any, **_k: Any) -> int:
        raise RuntimeError("ring is broken")

    world.tap.ring.append = explode
    start = time.monotonic()
    ids = [world.submit({"prompt": graph("pass", salt=i)}).json()["prompt_id"] for i in range(3)]
    bad = world.submit({"prompt": {"1": {"inputs": {}}}})
    assert bad.status_code == 400  # the rejection is still ComfyUI's answer
    world.wait_idle()
    assert time.monotonic() - start < 5
    assert all(world.history(i)["status"]["status_str"] == "success" for i in ids)
    assert world.tap.errors >= 3 * 5


def test_unexpected_shapes_in_hook_points_are_counted_not_raised() -> None:
    class OddQueue:  # a future ComfyUI whose queue methods return other shapes
        def __init__(self) -> None:
            self.calls: list[Any] = []

        def put(self, item: Any) -> str:
            self.calls.append(("put", item))
            return "put-result"

        def get(self, timeout: float | None = None) -> str:
            return "not a tuple"

        def task_done(self, item_id: Any, *args: Any, **kwargs: Any) -> None:
            self.calls.append(("task_done", item_id, kwargs))

    tap, queue = Tap(), OddQueue()
    QueueHooks(tap, queue).install()
    assert queue.put(None) == "put-result"
    assert queue.get(timeout=1) == "not a tuple"
    queue.task_done(5, {}, status=object())
    assert queue.calls == [("put", None), ("task_done", 5, {"status": queue.calls[1][2]["status"]})]
    assert tap.errors == 2  # put and get recording failed; task_done recorded an "unknown" finish
    assert [e["kind"] for e in tap.ring.snapshot(0, 10)[2]] == ["prompt_finished"]
    assert tap.ring.snapshot(0, 10)[2][0]["status"] == "unknown"
