"""Runs queued prompts one at a time and emits ComfyUI 0.8.0's websocket events and history.

Event routing follows comfyui-protocol.md §3: ``add_message`` events (execution_start, _cached,
_success, _error) reach only the submitter and are silent without a client_id; progress,
progress_state and execution_interrupted go to the submitter or, without client_id, to everyone;
TEXT frames always broadcast; previews are type 4 for a socket that announced
``supports_preview_metadata`` and type 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .graphs import execution_order, signatures
from .hub import PREVIEW_JPEG, Hub, encode_preview, encode_preview_meta, encode_text
from .nodes import NodeClass
from .queue import PromptQueue, QueueItem
from .versions import DEFAULT_VERSION, PROFILES, VersionProfile


def now_ms() -> int:
    return int(time.time() * 1000)


class Interrupted(Exception):
    """The running prompt was interrupted (POST /interrupt or a self-interrupting fault)."""


class NodeFailure(Exception):
    """A simulated node exception; ``mode`` selects the payload in ``errors.FAULTS``."""

    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self.mode = mode


@dataclass
class Blocker:
    """ComfyUI's ExecutionBlocker: downstream nodes do not run; output nodes report it."""

    message: str


@dataclass
class RunContext:
    """Per-prompt execution state (what ComfyUI keeps in PromptExecutor + ProgressRegistry)."""

    prompt_id: str
    client_id: str | None
    messages: list[list[Any]] = field(default_factory=list)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)


class Executor:
    """The prompt worker of one server lifetime."""

    def __init__(
        self,
        queue: PromptQueue,
        hub: Hub,
        classes: dict[str, NodeClass],
        on_finished: Callable[[str], None],
        step_seconds: float = 0.02,
        log: Callable[[str], None] | None = None,
        profile: VersionProfile | None = None,
    ) -> None:
        self.profile = profile or PROFILES[DEFAULT_VERSION]
        self.queue = queue
        self.log = log or (lambda _msg: None)
        self.hub = hub
        self.classes = classes
        self.on_finished = on_finished
        self.step_seconds = step_seconds
        self.cache: dict[str, Any] = {}  # signature -> ui output (or None)
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.current_prompt_id: str | None = None
        self._interrupt = asyncio.Event()
        self._save_counters: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def interrupt(self) -> None:
        """Global interrupt: ComfyUI sets a process flag that the running node checks."""
        self._interrupt.set()

    async def _worker(self) -> None:
        while True:
            item, task_id = await self.queue.get()
            await self.execute(item, task_id)

    # -- event helpers --------------------------------------------------------------------------
    def _add_message(self, ctx: RunContext, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": now_ms()}
        ctx.messages.append([event, data])
        if ctx.client_id is not None or broadcast:
            self.hub.send_sync(event, data, ctx.client_id)

    def _client_only(self, ctx: RunContext, event: str, data: dict[str, Any]) -> None:
        if ctx.client_id is not None:
            self.hub.send_sync(event, data, ctx.client_id)

    def _progress_state(self, ctx: RunContext, node_id: str, value: Any, maximum: Any, state: str) -> None:
        ctx.progress[node_id] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": ctx.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {k: dict(v) for k, v in ctx.progress.items()}
        self.hub.send_sync("progress_state", {"prompt_id": ctx.prompt_id, "nodes": nodes}, ctx.client_id)

    def _finish_node(self, ctx: RunContext, node_id: str) -> None:
        entry = ctx.progress.get(node_id, {"max": 1.0})
        self._progress_state(ctx, node_id, entry["max"], entry["max"], "finished")

    # -- waiting --------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up and raise as soon as an interrupt arrives."""
        if self._interrupt.is_set():
            raise Interrupted
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._interrupt.wait(), seconds)
        except TimeoutError:
            return
        raise Interrupted

    async def _steps(
        self, ctx: RunContext, node_id: str, seconds: float, steps: int, preview: bool, text: bool
    ) -> None:
        """A node that reports progress like comfy.utils.ProgressBar (steps=0: silent, 'stuck')."""
        if steps <= 0:  # a silent node: no progress at all (a "stuck" prompt while it lasts)
            await self._sleep(seconds)
            return
        per_step = seconds / steps
        meta_target = self.hub.supports_preview_metadata(ctx.client_id)
        for k in range(1, steps + 1):
            await self._sleep(per_step)
            if text:
                self.hub.send_binary(encode_text(node_id, f"fault injection: step {k}/{steps}"), None)
            self._progress_state(ctx, node_id, k, steps, "running")
            if preview and meta_target:
                meta = {
                    "node_id": node_id,
                    "prompt_id": ctx.prompt_id,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                    "image_type": "image/jpeg",
                }
                self.hub.send_binary(encode_preview_meta(PREVIEW_JPEG, meta), ctx.client_id)
            self.hub.send_sync(
                "progress",
                {"value": k, "max": steps, "prompt_id": ctx.prompt_id, "node": node_id},
                ctx.client_id,
            )
            if preview and not meta_target:
                self.hub.send_binary(encode_preview(PREVIEW_JPEG), ctx.client_id)

    # -- nodes ----------------------------------------------------------------------------------
    def _save(self, prefix: str, kind: str) -> dict[str, Any]:
        count = self._save_counters.get(prefix, 0) + 1
        self._save_counters[prefix] = count
        if kind == "temp":
            return {"images": [{"filename": f"{prefix}_{count:05}_.png", "subfolder": "", "type": "temp"}]}
        return {"images": [{"filename": f"{prefix}_{count:05}_.png", "subfolder": "", "type": "output"}]}

    async def _run_node(self, ctx: RunContext, node_id: str, node: dict[str, Any]) -> tuple[Any, Any]:
        """Simulate one node; returns ``(output_value, ui_output_or_None)``."""
        cls = node["class_type"]
        inputs = node.get("inputs", {})
        if cls == "FaultInjection":
            mode = inputs.get("mode", "pass")
            seconds = float(inputs.get("seconds", 0.0) or 0.0)
            steps = int(inputs.get("steps", 1))
            preview = bool(inputs.get("emit_preview", False))
            text = bool(inputs.get("emit_text", False))
            if mode == "block":
                return Blocker("fault injection: output blocked"), None
            if mode == "interrupt":
                if seconds > 0:  # run `seconds`, then interrupt itself
                    await self._steps(ctx, node_id, seconds, steps, preview, text)
                    raise Interrupted
                await self._interrupt.wait()  # run until POST /interrupt
                raise Interrupted
            if mode in ("sleep",) or (mode in errors.FAULTS and seconds > 0):
                await self._steps(ctx, node_id, seconds, steps, preview, text)
            if mode in errors.FAULTS:
                raise NodeFailure(mode)
            return "IMAGE", None
        if cls == "KSampler":
            await self._steps(
                ctx,
                node_id,
                self.step_seconds * int(inputs.get("steps", 1)),
                int(inputs.get("steps", 1)),
                False,
                False,
            )
            return "LATENT", None
        if cls == "SaveImage":
            return None, self._save(str(inputs.get("filename_prefix", "ComfyUI")), "output")
        if cls == "PreviewImage":
            return None, self._save("ComfyUI_temp_simul", "temp")
        await self._sleep(0)
        return cls, None

    # -- prompt ---------------------------------------------------------------------------------
    async def execute(self, item: QueueItem, task_id: int) -> None:
        """Run one prompt and write its history entry (the body of ComfyUI's prompt_worker)."""
        _, prompt_id, graph, extra_data, outputs_to_execute = item[:5]
        client_id = extra_data.get("client_id")
        ctx = RunContext(prompt_id, client_id)
        self.client_id = client_id
        self.current_prompt_id = prompt_id
        self._interrupt.clear()
        started = time.perf_counter()
        ui_outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        outcome = "success"
        success = True

        self._add_message(ctx, "execution_start", {"prompt_id": prompt_id}, False)
        sigs = signatures(graph, self.classes)
        cached = [n for n in graph if sigs[n] in self.cache]
        self.cache = {sigs[n]: self.cache[sigs[n]] for n in cached}
        self._add_message(ctx, "execution_cached", {"nodes": cached, "prompt_id": prompt_id}, False)

        order = execution_order(graph, list(outputs_to_execute))
        values: dict[str, Any] = {}
        for node_id in order:
            if node_id in cached:
                ui = self.cache[sigs[node_id]]
                values[node_id] = graph[node_id]["class_type"]
                if ui is not None:
                    self._client_only(
                        ctx,
                        "executed",
                        {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id},
                    )
                    self._progress_state(ctx, node_id, 1, 1, "finished")
                    ui_outputs[node_id] = ui
                    meta[node_id] = _meta(node_id)
        try:
            for node_id in order:
                if node_id in cached:
                    continue
                node = graph[node_id]
                if self._interrupt.is_set():
                    raise _NodeInterrupted(node_id)
                blocked = _blocked_input(node, values)
                self._progress_state(ctx, node_id, 0.0, 1.0, "running")
                self.last_node_id = node_id
                self._client_only(
                    ctx, "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
                )
                if blocked is not None:
                    values[node_id] = blocked
                    if self.classes[node["class_type"]].output_node:
                        self.hub.send_sync(
                            "execution_error",
                            errors.blocked_error(
                                prompt_id, node_id, node["class_type"], ctx.executed, blocked.message
                            ),
                            client_id,
                        )
                    self._finish_node(ctx, node_id)
                    continue
                try:
                    value, ui = await self._run_node(ctx, node_id, node)
                except Interrupted:
                    raise _NodeInterrupted(node_id) from None
                except NodeFailure as fail:
                    raise _NodeFailed(node_id, fail.mode) from None
                values[node_id] = value
                if ui is not None:  # ComfyUI sends `executed` before marking the node finished
                    self._client_only(
                        ctx,
                        "executed",
                        {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id},
                    )
                    ui_outputs[node_id] = ui
                    meta[node_id] = _meta(node_id)
                self._finish_node(ctx, node_id)
                ctx.executed.append(node_id)
                if not isinstance(value, Blocker):
                    self.cache[sigs[node_id]] = ui
            self._add_message(ctx, "execution_success", {"prompt_id": prompt_id}, False)
        except _NodeInterrupted as intr:
            success, outcome = False, "interrupted"
            node_type = graph[intr.node_id]["class_type"]
            self._add_message(
                ctx,
                "execution_interrupted",
                errors.interrupted(prompt_id, intr.node_id, node_type, ctx.executed),
                True,
            )
        except _NodeFailed as fail:
            success = False
            outcome = errors.ERROR_TYPE_OF_MODE[fail.mode]
            node = graph[fail.node_id]
            cls = self.classes[node["class_type"]]
            inputs = errors.current_inputs(node.get("inputs", {}), {}, fail.node_id, cls.unique_id_input)
            data = errors.execution_error(
                prompt_id,
                fail.node_id,
                node["class_type"],
                ctx.executed,
                fail.mode,
                inputs,
                _current_outputs(graph, fail.node_id, self.profile.current_outputs_graph_order),
                self.profile.exec_frames,
            )
            self._add_message(ctx, "execution_error", data, False)
            fault = errors.FAULTS[fail.mode]
            self.log(f"!!! Exception during processing !!! {fault.message}\n")
            self.log(errors.log_traceback(fault, self.profile.exec_frames))
        finally:
            self.last_node_id = None

        status = {
            "status_str": "success" if success else "error",
            "completed": success,
            "messages": ctx.messages,
        }
        self.queue.task_done(task_id, ui_outputs if success else {}, meta if success else {}, status)
        self.current_prompt_id = None
        self._client_only(ctx, "executing", {"node": None, "prompt_id": prompt_id})
        self.last_execution_seconds = time.perf_counter() - started
        self.on_finished(outcome)


class _NodeInterrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class _NodeFailed(Exception):
    def __init__(self, node_id: str, mode: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id
        self.mode = mode


def _meta(node_id: str) -> dict[str, Any]:
    return {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}


def _blocked_input(node: dict[str, Any], values: dict[str, Any]) -> Blocker | None:
    for val in node.get("inputs", {}).values():
        if isinstance(val, list) and len(val) == 2 and isinstance(values.get(val[0]), Blocker):
            return values[val[0]]
    return None


def _current_outputs(graph: dict[str, Any], failing: str, graph_order: bool = False) -> list[str]:
    """Node ids holding cache entries when the error happened (ComfyUI lists a set: 0.8.0 shows
    the failing node first, 0.3.64 graph order)."""
    ids = [failing, *[n for n in graph if n != failing]]
    return [n for n in graph if n in ids] if graph_order else ids
