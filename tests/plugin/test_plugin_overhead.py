"""How much the hooks add to a prompt and to a progress update (printed; numbers go to docs/plugin.md).

Hooked minus unhooked time of the same calls on the stand-in ComfyUI objects, best of several
rounds. The bounds asserted are loose (shared CI machines); the printed numbers are the result.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from comfyui_exporter.comfyui_plugin.hooks import QueueHooks, hook_validation
from comfyui_exporter.comfyui_plugin.progress_tap import hook_progress
from comfyui_exporter.comfyui_plugin.tap import Tap

ROUNDS = 5


def best_per_call(fn: Callable[[int], None], n: int) -> float:
    """Seconds per call of fn's inner loop (fn runs n iterations), best of ROUNDS."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - start) / n)
    return best


class QuietServer:
    def queue_updated(self) -> None:
        pass


def _queue_cycle(execution: Any, queue: Any) -> Callable[[int], None]:
    status = execution.PromptQueue.ExecutionStatus("success", True, [
        ("execution_start", {"prompt_id": "p", "timestamp": 1}),
        ("execution_success", {"prompt_id": "p", "timestamp": 2})])
    graph = {"1": {"class_type": "EmptyImage", "inputs": {}}}

    def cycle(n: int) -> None:
        for i in range(n):
            queue.put((i, f"p{i}", graph, {"create_time": 1, "client_id": "c"}, ["1"], {}))
            _item, item_id = queue.get(timeout=0)
            queue.task_done(item_id, {"outputs": {}, "meta": {}}, status=status)
    return cycle


def _validate_cycle(execution: Any) -> Callable[[int], None]:
    """A rejected submission (the recorded missing checkpoint): the hook's expensive case."""
    graph = json.loads(next(iter(execution.RECORDED)))

    def cycle(n: int) -> None:
        async def many() -> None:
            for i in range(n):
                await execution.validate_prompt(f"p{i}", graph, None)
        asyncio.run(many())
    return cycle


def _progress_cycle(progress: Any, execution: Any, what: str) -> Callable[[int], None]:
    def cycle(n: int) -> None:
        execution.reset_progress_state("p", progress.DynamicPrompt({"4": {"class_type": "KSampler"}}))
        registry = progress.get_progress_state()
        if what == "update":
            registry.start_progress("4")
            for i in range(n):
                registry.update_progress("4", i, n + 1)
        elif what == "node":
            for _ in range(n):
                registry.start_progress("4")
                registry.finish_progress("4")
        else:
            for _ in range(n):
                execution.reset_progress_state("p", registry.dynprompt)
    return cycle


def test_hook_overhead_per_prompt_and_per_progress_update(standin: dict[str, Any], capsys: Any) -> None:
    execution, progress = standin["execution"], standin["comfy_execution.progress"]
    progress.DynamicPrompt = standin["comfy_execution.graph"].DynamicPrompt
    queue = execution.PromptQueue(QuietServer())
    n_queue, n_updates = 3000, 20000
    base = {
        "queue": best_per_call(_queue_cycle(execution, queue), n_queue),
        "validate": best_per_call(_validate_cycle(execution), n_queue),
        "register": best_per_call(_progress_cycle(progress, execution, "register"), n_queue),
        "node": best_per_call(_progress_cycle(progress, execution, "node"), n_queue),
        "update": best_per_call(_progress_cycle(progress, execution, "update"), n_updates),
    }
    tap = Tap(capacity=4096, progress_interval=0.5)
    QueueHooks(tap, queue).install()
    hook_validation(tap, execution)
    hook_progress(tap, progress, execution)
    assert set(tap.hooks.values()) == {"active"}
    hooked = {
        "queue": best_per_call(_queue_cycle(execution, queue), n_queue),
        "validate": best_per_call(_validate_cycle(execution), n_queue),
        "register": best_per_call(_progress_cycle(progress, execution, "register"), n_queue),
        "node": best_per_call(_progress_cycle(progress, execution, "node"), n_queue),
        "update": best_per_call(_progress_cycle(progress, execution, "update"), n_updates),
    }
    tap.progress_interval = 0.0
    hooked["update_emitting"] = best_per_call(_progress_cycle(progress, execution, "update"), n_updates)
    us = {k: (hooked[k] - base["update" if k == "update_emitting" else k]) * 1e6 for k in hooked}
    assert tap.errors == 0 and tap.ring.seq > 0

    page = tap.ring.snapshot(0, 500)[2]
    start = time.perf_counter()
    for _ in range(20):
        json.dumps({"events": page})
    serialize_ms = (time.perf_counter() - start) / 20 * 1e3

    per_prompt = us["queue"] + us["register"]
    with capsys.disabled():
        print(f"\n[plugin overhead] per prompt (put+get+task_done {us['queue']:.1f} us, "
              f"progress handler registration {us['register']:.1f} us): "
              f"{per_prompt:.1f} us; per rejected submission {us['validate']:.1f} us; "
              f"per executed node (start+finish): {us['node']:.1f} us; "
              f"per progress update: {us['update']:.2f} us thinned, {us['update_emitting']:.2f} us when "
              f"recorded; serializing a 500-event page on the event loop: {serialize_ms:.2f} ms")
    assert per_prompt < 500 and us["validate"] < 500, us
    assert us["node"] < 100 and us["update"] < 20 and us["update_emitting"] < 50, us


@pytest.mark.parametrize("capacity", [64])
def test_a_ring_full_of_events_stays_bounded(capacity: int) -> None:
    tap = Tap(capacity=capacity)
    for i in range(10 * capacity):
        tap.emit("progress", {"prompt_id": "p", "node_id": "1", "value": i, "max": 10 * capacity})
    newest, oldest, events = tap.ring.snapshot(0, 10**6)
    assert len(events) == capacity and newest - oldest + 1 == capacity and tap.ring.dropped == 9 * capacity
