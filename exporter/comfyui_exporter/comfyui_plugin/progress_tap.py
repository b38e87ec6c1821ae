"""Per-prompt progress and node start/finish through ComfyUI's progress-handler registry.

0.8.0 builds a fresh ``ProgressRegistry`` for every prompt in ``reset_progress_state`` (called by
``PromptExecutor.execute_async`` through the name it imported into ``execution``) and tells every
registered handler when a node starts, updates and finishes. Wrapping ``reset_progress_state``
where it is looked up lets us register one handler per prompt; unlike the websocket this sees
every prompt, with or without client_id.

Handlers run on the prompt-worker thread, inside the sampler loop for updates, so they only do
dict work and a ring append. Updates are thinned to one event per node per ``progress_interval``
(plus the first and the last), because a long video sampler can report thousands of steps and
would otherwise push everything else out of the ring.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any

from .hooks import MARKER, _is_hooked
from .summarize import clip
from .tap import Tap

HANDLER_NAME = "comfyui_exporter"


def make_handler_class(base: type) -> type:
    """Builds the handler on top of ComfyUI's ProgressHandler (so isinstance checks hold)."""

    class ExporterProgressHandler(base):  # type: ignore[misc, valid-type]
        def __init__(self, tap: Tap, prompt_id: str) -> None:
            with contextlib.suppress(TypeError):  # a base without the (name) constructor
                super().__init__(HANDLER_NAME)
            self.name = HANDLER_NAME
            self.enabled = True
            self.tap = tap
            self.prompt_id = prompt_id
            self.registry: Any = None
            self._started: dict[str, float] = {}
            self._types: dict[str, str | None] = {}
            self._last_update: dict[str, float] = {}

        def set_registry(self, registry: Any) -> None:
            self.registry = registry

        def _node_type(self, node_id: str) -> str | None:
            if node_id not in self._types:
                try:
                    node = self.registry.dynprompt.get_node(node_id)
                    self._types[node_id] = clip(node.get("class_type"), 120)
                except Exception:  # unknown node id or no dynprompt: report without a type
                    self._types[node_id] = None
            return self._types[node_id]

        def start_handler(self, node_id: str, state: Any, prompt_id: str) -> None:
            try:
                self._started[node_id] = time.monotonic()
                self.tap.emit(
                    "node_started",
                    {
                        "prompt_id": prompt_id,
                        "node_id": clip(node_id, 120),
                        "node_type": self._node_type(node_id),
                    },
                )
            except Exception:
                self.tap.failed("progress start")

        def update_handler(
            self, node_id: str, value: float, max_value: float, state: Any, prompt_id: str, image: Any = None
        ) -> None:
            try:
                if node_id is None:  # a ProgressBar outside any node: nothing to attribute it to
                    return
                now = time.monotonic()
                last = self._last_update.get(node_id)
                if last is not None and value < max_value and now - last < self.tap.progress_interval:
                    return
                self._last_update[node_id] = now
                self.tap.emit(
                    "progress",
                    {
                        "prompt_id": prompt_id,
                        "node_id": clip(node_id, 120),
                        "value": float(value),
                        "max": float(max_value),
                    },
                )
            except Exception:
                self.tap.failed("progress update")

        def finish_handler(self, node_id: str, state: Any, prompt_id: str) -> None:
            try:
                start = self._started.pop(node_id, None)
                if start is None:  # a cached node: finished without running, nothing to time
                    return
                self.tap.emit(
                    "node_finished",
                    {
                        "prompt_id": prompt_id,
                        "node_id": clip(node_id, 120),
                        "node_type": self._node_type(node_id),
                        "seconds": time.monotonic() - start,
                    },
                )
            except Exception:
                self.tap.failed("progress finish")

        def reset(self) -> None:
            self._started.clear()
            self._last_update.clear()

    return ExporterProgressHandler


def hook_progress(tap: Tap, progress: Any, execution: Any) -> None:
    """Wraps ``reset_progress_state`` in ``execution`` and ``comfy_execution.progress``."""
    original = getattr(progress, "reset_progress_state", None) if progress is not None else None
    get_state = getattr(progress, "get_progress_state", None) if progress is not None else None
    if not callable(original) or not callable(get_state):
        tap.mark("progress", "disabled: comfy_execution.progress has no reset/get_progress_state")
        return
    handler_cls = make_handler_class(getattr(progress, "ProgressHandler", object))

    def register(prompt_id: Any) -> None:
        try:
            registry = get_state()
            handler = handler_cls(tap, clip(prompt_id, 120) or "")
            handler.set_registry(registry)
            registry.register_handler(handler)
        except Exception:
            tap.failed("progress registration")

    targets = [
        m
        for m in (execution, progress)
        if m is not None and getattr(m, "reset_progress_state", None) is not None
    ]
    wrapped = 0
    for module in targets:
        current = module.reset_progress_state
        if _is_hooked(current):
            wrapped += 1
            continue
        if current is not original:
            continue  # someone else replaced it there: leave their function alone

        @functools.wraps(original)
        def reset_progress_state(prompt_id: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(prompt_id, *args, **kwargs)
            register(prompt_id)
            return result

        setattr(reset_progress_state, MARKER, True)
        module.reset_progress_state = reset_progress_state
        wrapped += 1
    if wrapped:
        tap.mark("progress", "active")
    else:
        tap.mark("progress", "disabled: reset_progress_state is not the one ComfyUI calls")
