"""Stand-in for comfy_execution.progress: a registry per prompt that notifies named handlers."""

from __future__ import annotations

from enum import Enum
from typing import Any

from comfy_execution.graph import DynamicPrompt


class NodeState(Enum):
    Pending = "pending"
    Running = "running"
    Finished = "finished"
    Error = "error"


class ProgressHandler:
    def __init__(self, name: str) -> None:
        self.name = name
        self.enabled = True

    def set_registry(self, registry: ProgressRegistry) -> None:
        pass

    def start_handler(self, node_id: str, state: dict[str, Any], prompt_id: str) -> None:
        pass

    def update_handler(self, node_id: str, value: float, max_value: float, state: dict[str, Any],
                       prompt_id: str, image: Any = None) -> None:
        pass

    def finish_handler(self, node_id: str, state: dict[str, Any], prompt_id: str) -> None:
        pass

    def reset(self) -> None:
        pass


class WebUIProgressHandler(ProgressHandler):
    """Sends progress_state to the submitter, as ComfyUI's own handler does."""

    def __init__(self, server_instance: Any) -> None:
        super().__init__("webui")
        self.server_instance = server_instance

    def _send(self, prompt_id: str) -> None:
        self.server_instance.send_sync("progress_state", {"prompt_id": prompt_id},
                                       self.server_instance.client_id)

    def start_handler(self, node_id: str, state: dict[str, Any], prompt_id: str) -> None:
        self._send(prompt_id)

    def update_handler(self, node_id: str, value: float, max_value: float, state: dict[str, Any],
                       prompt_id: str, image: Any = None) -> None:
        self._send(prompt_id)

    def finish_handler(self, node_id: str, state: dict[str, Any], prompt_id: str) -> None:
        self._send(prompt_id)


class ProgressRegistry:
    def __init__(self, prompt_id: str, dynprompt: DynamicPrompt) -> None:
        self.prompt_id = prompt_id
        self.dynprompt = dynprompt
        self.nodes: dict[str, dict[str, Any]] = {}
        self.handlers: dict[str, ProgressHandler] = {}

    def register_handler(self, handler: ProgressHandler) -> None:
        self.handlers[handler.name] = handler

    def _entry(self, node_id: str) -> dict[str, Any]:
        return self.nodes.setdefault(node_id, {"state": NodeState.Pending, "value": 0, "max": 1})

    def _notify(self, method: str, *args: Any) -> None:
        for handler in list(self.handlers.values()):
            if handler.enabled:
                getattr(handler, method)(*args)

    def start_progress(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state=NodeState.Running, value=0.0, max=1.0)
        self._notify("start_handler", node_id, entry, self.prompt_id)

    def update_progress(self, node_id: str, value: float, max_value: float, image: Any = None) -> None:
        entry = self._entry(node_id)
        entry.update(state=NodeState.Running, value=value, max=max_value)
        self._notify("update_handler", node_id, value, max_value, entry, self.prompt_id, image)

    def finish_progress(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state=NodeState.Finished, value=entry["max"])
        self._notify("finish_handler", node_id, entry, self.prompt_id)

    def reset_handlers(self) -> None:
        for handler in self.handlers.values():
            handler.reset()


global_progress_registry: ProgressRegistry | None = None


def reset_progress_state(prompt_id: str, dynprompt: DynamicPrompt) -> None:
    global global_progress_registry
    if global_progress_registry is not None:
        global_progress_registry.reset_handlers()
    global_progress_registry = ProgressRegistry(prompt_id, dynprompt)


def add_progress_handler(handler: ProgressHandler) -> None:
    registry = get_progress_state()
    handler.set_registry(registry)
    registry.register_handler(handler)


def get_progress_state() -> ProgressRegistry:
    global global_progress_registry
    if global_progress_registry is None:
        global_progress_registry = ProgressRegistry("", DynamicPrompt({}))
    return global_progress_registry
