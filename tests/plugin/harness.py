"""A fake ComfyUI process for the plugin tests: stand-in modules, server thread, prompt worker.

``StandIn`` puts the stand-in modules into ``sys.modules`` under ComfyUI's module names (and takes
them out again). ``ComfyWorld`` then does what ComfyUI's main.py does, in its order: create the
PromptServer on an event loop, load custom nodes (the plugin, from ``custom_nodes/`` where
``install_plugin`` put it, under ComfyUI's path-derived module name), add the routes, serve on
127.0.0.1, and run a prompt-worker thread (get -> execute -> task_done).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

STANDIN = Path(__file__).resolve().parent / "standin"
# (module name, file) in import order; None = an empty package module.
MODULES: list[tuple[str, str | None]] = [
    ("comfy_execution", None), ("comfy_execution.graph", "graph.py"),
    ("comfy_execution.utils", "exec_utils.py"), ("comfy_execution.progress", "progress.py"),
    ("comfy", None), ("comfy.model_management", "model_management.py"),
    ("nodes", "nodes.py"), ("execution", "execution.py"), ("server", "server.py"),
]
PLUGIN_DIR = "comfyui-exporter-plugin"
RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "comfyui-0.8.0"


def recorded_submissions() -> list[dict[str, Any]]:
    """Every POST /prompt of the validation_error_* recordings (label, request_body, status, response)."""
    out = []
    for path in sorted(RECORDINGS.glob("validation_error_*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8"))["http"]:
            if entry["method"] == "POST" and entry["path"].rstrip("/").endswith("prompt"):
                out.append(entry)
    return out


def recorded_validation() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """graph JSON -> (error, node_errors) of the recorded 400 answers, for the stand-in validate_prompt."""
    return {json.dumps(e["request_body"]["prompt"], sort_keys=True):
            (e["response"]["error"], e["response"]["node_errors"])
            for e in recorded_submissions()
            if isinstance(e["request_body"], dict) and "prompt" in e["request_body"] and e["status"] == 400}


class StandIn:
    """The stand-in ComfyUI modules in sys.modules, for the duration of a test."""

    def __init__(self, skip: tuple[str, ...] = ()) -> None:
        self.skip = skip
        self.mods: dict[str, types.ModuleType] = {}
        self._saved: dict[str, Any] = {}

    def load(self) -> dict[str, types.ModuleType]:
        for name, filename in MODULES:
            self._saved.setdefault(name, sys.modules.get(name))
            if name in self.skip:
                sys.modules.pop(name, None)
                continue
            if filename is None:
                module = types.ModuleType(name)
                module.__path__ = []  # a package, so "import comfy.model_management" works
            else:
                spec = importlib.util.spec_from_file_location(name, STANDIN / filename)
                module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            if filename is not None:
                spec.loader.exec_module(module)
            parent, _, child = name.rpartition(".")
            if parent and parent in sys.modules:
                setattr(sys.modules[parent], child, module)
            self.mods[name] = module
        if "execution" in self.mods:
            self.mods["execution"].RECORDED.update(recorded_validation())
        return self.mods

    def unload(self) -> None:
        for name, previous in self._saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
        for name in [n for n in sys.modules if "custom_nodes/" in n]:  # the plugin as ComfyUI loaded it
            del sys.modules[name]
        self._saved.clear()


class ComfyWorld:
    """One fake ComfyUI process with the plugin loaded; ``restart()`` is a new process, same port."""

    def __init__(self, comfyui_dir: Path, tamper: Callable[[dict[str, types.ModuleType]], None] | None = None,
                 skip: tuple[str, ...] = (), also_load: tuple[str, ...] = ()) -> None:
        self.plugin_path = comfyui_dir / "custom_nodes" / PLUGIN_DIR
        self.also_load = [comfyui_dir / "custom_nodes" / name for name in also_load]
        self.tamper, self.skip = tamper, skip
        self.port = 0
        self.plugin: types.ModuleType | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ComfyWorld:
        self.standin = StandIn(self.skip)
        self.mods = self.standin.load()
        if self.tamper is not None:
            self.tamper(self.mods)
        self._stop = threading.Event()
        ready = threading.Event()
        self._loop_thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._loop_thread.start()
        if not ready.wait(10):
            raise RuntimeError("stand-in server did not start")
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(5)
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(5)
        self.standin.unload()

    def restart(self) -> None:
        self.stop()
        self.start()

    async def _shutdown(self) -> None:
        self._publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._publisher
        await self._runner.cleanup()

    def _serve(self, ready: threading.Event) -> None:
        self.loop = loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.server = self.mods["server"].PromptServer(loop)
        self.plugin = self.mods["nodes"].load_custom_node(str(self.plugin_path))
        for path in self.also_load:  # e.g. a second copy of the pack under another name
            self.mods["nodes"].load_custom_node(str(path))
        self.server.add_routes()
        self._runner = web.AppRunner(self.server.app, access_log=None, handler_cancellation=True)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._publisher = loop.create_task(self.server.publish_loop())
        ready.set()
        loop.run_forever()
        loop.close()

    def _work(self) -> None:
        """main.prompt_worker: get -> execute -> task_done with an ExecutionStatus."""
        execution = self.mods["execution"]
        queue = self.server.prompt_queue
        executor = execution.PromptExecutor(self.server)
        while not self._stop.is_set():
            got = queue.get(timeout=0.02)
            if got is None:
                continue
            item, item_id = got
            self.server.last_prompt_id = item[1]
            extra = {**item[3], **item[5]}
            executor.execute(item[2], item[1], extra, item[4])
            status = execution.PromptQueue.ExecutionStatus(
                status_str="success" if executor.success else "error", completed=executor.success,
                messages=executor.status_messages)
            queue.task_done(item_id, executor.history_result, status=status,
                            process_item=lambda p: p[:5] + p[6:])

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tap(self) -> Any:
        return getattr(self.server, "_comfyui_exporter_tap", None)

    def submit(self, body: Any) -> requests.Response:
        if isinstance(body, str):
            return requests.post(self.url + "/prompt", data=body, timeout=5)
        return requests.post(self.url + "/prompt", json=body, timeout=5)

    def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        queue = self.server.prompt_queue
        while queue.get_tasks_remaining() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("prompts still running")
            time.sleep(0.01)

    def history(self, prompt_id: str) -> dict[str, Any]:
        return self.server.prompt_queue.history[prompt_id]


def graph(mode: str = "pass", **fault: Any) -> dict[str, Any]:
    """EmptyImage -> FaultInjection(mode) -> SaveImage, like the recorded test graphs."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "FaultInjection", "inputs": {"mode": mode, "image": ["1", 0], **fault}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
    }


def guard_graph(threshold_mb: int, action: str) -> dict[str, Any]:
    """EmptyImage -> Health Check: VRAM -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ComfyUIExporterVRAMGuard",
              "inputs": {"value": ["1", 0], "threshold_mb": threshold_mb, "action": action}},
        "3": {"class_type": "SaveImage",
              "inputs": {"images": ["2", 0], "filename_prefix": "t", "no_cache": 1}},
    }
