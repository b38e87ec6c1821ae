"""Stand-in for ComfyUI 0.8.0's execution module: PromptQueue, validate_prompt, PromptExecutor.

Like 0.8.0, it imports the progress functions by name (so the plugin must hook the binding that
is actually called), runs prompts on the worker thread, keeps status messages for history and
calls ``task_done(item_id, history_result, status=ExecutionStatus(...), process_item=...)``.
Node behaviour is scripted by class_type (EmptyImage, FaultInjection, SaveImage) or comes from a
node class registered in ``nodes.NODE_CLASS_MAPPINGS`` (the plugin's guard node).
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import json
import threading
import time
from typing import Any, Literal, NamedTuple

import comfy.model_management
import nodes
from comfy_execution.graph import DynamicPrompt
from comfy_execution.progress import (
    WebUIProgressHandler,
    add_progress_handler,
    get_progress_state,
    reset_progress_state,
)
from comfy_execution.utils import CurrentNodeContext

# graph JSON (sort_keys) -> (error, node_errors) recorded from ComfyUI 0.8.0; filled by harness.StandIn.
RECORDED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
OUTPUT_TYPES = {"SaveImage", "PreviewImage"}
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


async def validate_prompt(prompt_id: str, prompt: dict[str, Any], partial_execution_list: Any) -> tuple:
    """Returns the recorded 0.8.0 result for recorded graphs, else a plain valid result."""
    await asyncio.sleep(0)
    recorded = RECORDED.get(json.dumps(prompt, sort_keys=True))
    if recorded is not None:
        return (False, recorded[0], [], recorded[1])
    outputs = [k for k, v in prompt.items() if v.get("class_type") in OUTPUT_TYPES]
    return (True, None, outputs, {})


class PromptQueue:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.mutex = threading.RLock()
        self.not_empty = threading.Condition(self.mutex)
        self.task_counter = 0
        self.queue: list[tuple] = []
        self.currently_running: dict[int, tuple] = {}
        self.history: dict[str, dict[str, Any]] = {}

    def put(self, item: tuple) -> None:
        with self.mutex:
            heapq.heappush(self.queue, item)
            self.server.queue_updated()
            self.not_empty.notify()

    def get(self, timeout: float | None = None) -> tuple | None:
        with self.not_empty:
            while len(self.queue) == 0:
                self.not_empty.wait(timeout=timeout)
                if timeout is not None and len(self.queue) == 0:
                    return None
            item = heapq.heappop(self.queue)
            i = self.task_counter
            self.currently_running[i] = copy.deepcopy(item)
            self.task_counter += 1
            self.server.queue_updated()
            return (item, i)

    class ExecutionStatus(NamedTuple):
        status_str: Literal["success", "error"]
        completed: bool
        messages: list

    def task_done(self, item_id: int, history_result: dict[str, Any], status: Any,
                  process_item: Any = None) -> None:
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            if process_item is not None:
                prompt = process_item(prompt)
            self.history[prompt[1]] = {"prompt": prompt, "outputs": {},
                                       "status": status._asdict() if status is not None else None}
            self.history[prompt[1]].update(history_result)
            self.server.queue_updated()

    def get_tasks_remaining(self) -> int:
        with self.mutex:
            return len(self.queue) + len(self.currently_running)


def full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


class PromptExecutor:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.outputs_cache: dict[str, Any] = {}
        self.status_messages: list[tuple[str, dict[str, Any]]] = []
        self.success = True
        self.history_result: dict[str, Any] = {}

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.status_messages.append((event, data))
        if self.server.client_id is not None or broadcast:
            self.server.send_sync(event, data, self.server.client_id)

    def execute(self, prompt: dict[str, Any], prompt_id: str, extra_data: dict[str, Any] | None = None,
                execute_outputs: list[str] | None = None) -> None:
        extra_data = extra_data or {}
        self.server.client_id = extra_data.get("client_id")
        self.status_messages, self.success = [], True
        self.add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)
        reset_progress_state(prompt_id, DynamicPrompt(prompt))
        add_progress_handler(WebUIProgressHandler(self.server))
        outputs: dict[str, Any] = {}
        executed: list[str] = []
        for node_id, node in prompt.items():
            key = json.dumps([node_id, node], sort_keys=True)
            if key in self.outputs_cache and self._cacheable(node):
                outputs[node_id] = self.outputs_cache[key]
                get_progress_state().finish_progress(node_id)  # cached: finish without start
                continue
            get_progress_state().start_progress(node_id)
            try:
                with CurrentNodeContext(prompt_id, node_id):
                    outputs[node_id] = self._run(node, outputs, node_id)
            except Exception as ex:
                self.success = False
                base = {"prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"],
                        "executed": list(executed)}
                if isinstance(ex, comfy.model_management.InterruptProcessingException):
                    self.add_message("execution_interrupted", base, broadcast=True)
                else:
                    self.add_message("execution_error", {**base, "exception_message": f"{ex}\n",
                                                         "exception_type": full_type_name(type(ex)),
                                                         "traceback": [], "current_inputs": {},
                                                         "current_outputs": []}, broadcast=False)
                break
            self.outputs_cache[key] = outputs[node_id]
            get_progress_state().finish_progress(node_id)
            executed.append(node_id)
        else:
            self.add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)
        self.history_result = {"outputs": {}, "meta": {}}

    @staticmethod
    def _cacheable(node: dict[str, Any]) -> bool:
        """No cache for no_cache inputs or an IS_CHANGED that differs from itself (NaN)."""
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
        if hasattr(cls, "IS_CHANGED"):
            widgets = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
            changed = cls.IS_CHANGED(**widgets)
            if changed != changed:
                return False
        return not node["inputs"].get("no_cache")

    def _run(self, node: dict[str, Any], outputs: dict[str, Any], node_id: str) -> Any:
        inputs = {k: outputs[v[0]][v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        cls = nodes.NODE_CLASS_MAPPINGS.get(node["class_type"])
        if cls is not None:
            return getattr(cls(), cls.FUNCTION)(**inputs)
        mode = inputs.get("mode", "pass")
        if mode == "sleep":
            steps = int(inputs.get("steps", 1))
            for step in range(1, steps + 1):
                time.sleep(float(inputs.get("seconds", 0)) / steps)
                get_progress_state().update_progress(node_id, step, steps)
        elif mode == "oom":
            raise comfy.model_management.OOM_EXCEPTION("CUDA out of memory. Tried to allocate 2.00 GiB")
        elif mode == "runtime_error":
            raise RuntimeError("boom")
        elif mode == "interrupt":
            raise comfy.model_management.InterruptProcessingException()
        return (f"output of {node_id}",)
