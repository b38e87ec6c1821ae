"""Queue, validation and submission hooks, each installed by feature detection.

Every wrapper calls ComfyUI's original first with the arguments unchanged, returns its result
unchanged and lets its exceptions through unchanged; only the recording step after it is guarded,
and a failure there is counted and logged by ``Tap.failed``. A hook point that does not exist (or
does not look like 0.8.0's) is marked disabled and the others still work.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .summarize import clip, finish_fields, invalid_prompt_id_fields, no_prompt_fields, rejection_fields
from .tap import Tap

MARKER = "__comfyui_exporter_hook__"
_MAX_RUNNING = 1024


def _is_hooked(func: Any) -> bool:
    return bool(getattr(func, MARKER, False))


def _mark(wrapper: Callable[..., Any]) -> Callable[..., Any]:
    setattr(wrapper, MARKER, True)
    return wrapper


class QueueHooks:
    """Wraps ``PromptQueue.put/get/task_done`` on the live queue instance.

    ``get`` and ``task_done`` run on the prompt-worker thread, ``put`` on the event loop. The
    item_id -> (prompt_id, start) map is ours, so no ComfyUI lock is ever taken.
    """

    def __init__(self, tap: Tap, queue: Any) -> None:
        self.tap = tap
        self.queue = queue
        self._running: dict[Any, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        for name, make in (
            ("put", self._wrap_put),
            ("get", self._wrap_get),
            ("task_done", self._wrap_task_done),
        ):
            hook = f"queue.{name}"
            original = getattr(self.queue, name, None)
            if not callable(original):
                self.tap.mark(hook, "disabled: PromptQueue has no callable " + name)
            elif _is_hooked(original):
                self.tap.mark(hook, "active")
            else:
                setattr(self.queue, name, _mark(functools.wraps(original)(make(original))))
                self.tap.mark(hook, "active")

    def _wrap_put(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def put(item: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(item, *args, **kwargs)
            try:
                self._on_put(item)
            except Exception:
                self.tap.failed("queue.put hook")
            return result

        return put

    def _wrap_get(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def get(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if result is not None:
                try:
                    self._on_get(result)
                except Exception:
                    self.tap.failed("queue.get hook")
            return result

        return get

    def _wrap_task_done(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def task_done(item_id: Any, *args: Any, **kwargs: Any) -> Any:
            started = self._before_done(item_id)
            result = original(item_id, *args, **kwargs)
            try:
                status = kwargs.get("status", args[1] if len(args) > 1 else None)
                self._on_done(started, status)
            except Exception:
                self.tap.failed("queue.task_done hook")
            return result

        return task_done

    def _on_put(self, item: Any) -> None:
        extra = item[3] if len(item) > 3 and isinstance(item[3], Mapping) else {}
        graph = item[2] if len(item) > 2 else None
        create_time = extra.get("create_time")
        self.tap.emit(
            "prompt_submitted",
            {
                "prompt_id": clip(item[1], 120),
                "number": item[0] if isinstance(item[0], (int, float)) else None,
                "create_time_ms": create_time if isinstance(create_time, (int, float)) else None,
                "has_client_id": "client_id" in extra,
                "nodes": len(graph) if isinstance(graph, Mapping) else None,
            },
        )

    def _on_get(self, result: Any) -> None:
        item, item_id = result[0], result[1]
        prompt_id = clip(item[1], 120)
        now = time.time()
        with self._lock:
            if len(self._running) >= _MAX_RUNNING:  # task_done never came for some: forget the oldest
                self._running.pop(next(iter(self._running)))
            self._running[item_id] = (prompt_id, time.monotonic())
        extra = item[3] if len(item) > 3 and isinstance(item[3], Mapping) else {}
        create_time = extra.get("create_time")
        wait = now - create_time / 1000.0 if isinstance(create_time, (int, float)) else None
        self.tap.emit(
            "prompt_started",
            {"prompt_id": prompt_id, "ts": now, "queue_wait_s": max(0.0, wait) if wait is not None else None},
        )

    def _before_done(self, item_id: Any) -> tuple[str | None, float | None]:
        try:
            with self._lock:
                started = self._running.pop(item_id, None)
            if started is not None:
                return started
            running = getattr(self.queue, "currently_running", None)  # get hook missing: ask the queue
            item = running.get(item_id) if isinstance(running, Mapping) else None
            return (clip(item[1], 120) if item else None, None)
        except Exception:
            self.tap.failed("queue.task_done hook")
            return (None, None)

    def _on_done(self, started: tuple[str | None, float | None], status: Any) -> None:
        prompt_id, start = started
        fields = finish_fields(status)
        fields["prompt_id"] = prompt_id
        fields["seconds"] = time.monotonic() - start if start is not None else None
        self.tap.emit("prompt_finished", fields)


def hook_validation(tap: Tap, execution: Any) -> None:
    """Wraps ``execution.validate_prompt``, which server.py looks up on the module at call time."""
    original = getattr(execution, "validate_prompt", None) if execution is not None else None
    if not callable(original):
        tap.mark("validation", "disabled: execution.validate_prompt not found")
        return
    if _is_hooked(original):
        tap.mark("validation", "active")
        return

    def record(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        try:
            prompt_id = args[0] if args else kwargs.get("prompt_id")
            prompt = args[1] if len(args) > 1 else kwargs.get("prompt")
            fields = rejection_fields(prompt_id, prompt, result)
            if fields is not None:
                tap.emit("prompt_rejected", fields)
        except Exception:
            tap.failed("validation hook")

    if inspect.iscoroutinefunction(original):

        async def validate_prompt(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            record(args, kwargs, result)
            return result
    else:

        def validate_prompt(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            result = original(*args, **kwargs)
            record(args, kwargs, result)
            return result

    execution.validate_prompt = _mark(functools.wraps(original)(validate_prompt))
    tap.mark("validation", "active")


def hook_submissions(tap: Tap, server_instance: Any, server_module: Any = None) -> None:
    """An on_prompt handler sees every POST /prompt body before ComfyUI looks at it.

    That covers two rejections ``validate_prompt`` never sees: a body without ``prompt`` (every
    version), and, from ComfyUI 0.38 on, a client-chosen ``prompt_id`` that is not a canonical UUID
    (HTTP 400 ``invalid_prompt_id``, answered before validation). The second is checked with ComfyUI's
    own ``server.validate_job_id`` when that exists, so the plugin rejects exactly what ComfyUI
    rejects; on older versions, which accept any prompt_id, there is nothing to check.
    """
    add = getattr(server_instance, "add_on_prompt_handler", None)
    if not callable(add):
        tap.mark("submissions", "disabled: PromptServer.add_on_prompt_handler not found")
        return
    validate_id = getattr(server_module, "validate_job_id", None) if server_module is not None else None
    validate_id = validate_id if callable(validate_id) else None

    def on_prompt(json_data: Any) -> Any:
        try:
            if isinstance(json_data, (dict, list)) and "prompt" not in json_data:
                tap.emit("prompt_rejected", no_prompt_fields())
            elif validate_id is not None and isinstance(json_data, dict):
                client_id = json_data.get("prompt_id")
                if client_id is not None:
                    try:
                        validate_id(client_id)
                    except ValueError as exc:
                        tap.emit("prompt_rejected", invalid_prompt_id_fields(client_id, str(exc)))
        except Exception:
            tap.failed("submission hook")
        return json_data

    add(_mark(on_prompt))
    tap.mark("submissions", "active")
    if validate_id is not None:
        tap.mark("submissions.prompt_id", "active")
