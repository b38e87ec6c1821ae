"""Pure parsers: ComfyUI's JSON in, typed events out, ``MalformedError`` for anything else.

Kept free of I/O so every parser can be fuzzed (tests/unit/test_parsers_fuzz.py) and checked
against the recordings. Shapes follow ComfyUI 0.8.0 (see ``shared/comfyui-protocol.md``); 0.3.64
and 0.38 answer in the same shapes (differences: docs/comfyui-versions.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .classify import classify
from .events import (
    DeviceStats,
    FailureDetail,
    Outcome,
    ProgressSeen,
    PromptFinished,
    QueueJob,
    QueueRemaining,
    QueueSnapshot,
    SystemStats,
)

MESSAGE_LIMIT = 500
_FINAL_MESSAGES = {
    "execution_success": Outcome.SUCCESS,
    "execution_error": Outcome.ERROR,
    "execution_interrupted": Outcome.INTERRUPTED,
    # Not sent by any version read so far (0.38 still ends a cancel with execution_interrupted),
    # but a cancel must never count as a failure, whatever a later version calls it.
    "execution_cancelled": Outcome.INTERRUPTED,
}
# status_str without a final message: ComfyUI writes "success"/"error"; a cancel/interrupt spelled
# out is an interruption, never a failure (0.38's /api/jobs says "cancelled" for these prompts).
_STATUS_STR = {
    "success": Outcome.SUCCESS,
    "error": Outcome.ERROR,
    "cancelled": Outcome.INTERRUPTED,
    "canceled": Outcome.INTERRUPTED,
    "interrupted": Outcome.INTERRUPTED,
}


class MalformedError(ValueError):
    """The payload does not have the shape ComfyUI 0.8.0 gives it; counted and skipped."""


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) / 1000.0


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def clean_text(text: Any, limit: int = MESSAGE_LIMIT) -> str:
    """Truncate and strip control characters: ComfyUI messages end up in JSON, logs and chat."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:limit]
    return "".join(ch if ch in "\n\t" or ch.isprintable() else " " for ch in text).strip()


def clean_id(text: Any, limit: int = 200) -> str:
    """Identifiers and type names (prompt ids are client-chosen): one line, no control characters."""
    return clean_text(text, limit).replace("\n", " ").replace("\t", " ")


def parse_history(body: Any) -> list[tuple[str, dict[str, Any]]]:
    """``GET /history?max_items=N`` → ``[(prompt_id, item)]`` oldest first (ComfyUI's completion order)."""
    items = _dict(body, "history")
    out: list[tuple[str, dict[str, Any]]] = []
    for prompt_id, item in items.items():
        out.append((prompt_id, _dict(item, f"history[{prompt_id!r}]")))
    return out


def parse_history_item(prompt_id: str, item: Mapping[str, Any], at: float) -> PromptFinished:
    """Turn one history entry into the outcome the counters need."""
    status = _dict(item.get("status"), "status")
    messages = _list(status.get("messages", []), "status.messages")
    started_at = ended_at = None
    cached = 0
    outcome: Outcome | None = None
    failure: FailureDetail | None = None
    for message in messages:
        if not isinstance(message, list) or len(message) != 2 or not isinstance(message[1], dict):
            raise MalformedError("status.messages: each message must be [event, data]")
        event, data = message
        if event == "execution_start":
            started_at = _ms(data.get("timestamp"))
        elif event == "execution_cached":
            nodes = data.get("nodes")
            cached = len(nodes) if isinstance(nodes, list) else 0
        elif event in _FINAL_MESSAGES:
            outcome = _FINAL_MESSAGES[event]
            ended_at = _ms(data.get("timestamp"))
            if outcome is Outcome.ERROR:
                failure = _failure(data)
    if outcome is None:
        # No final message: trust status_str; ComfyUI writes "error" for anything not successful.
        status_str = status.get("status_str")
        outcome = _STATUS_STR.get(status_str) if isinstance(status_str, str) else None
        if outcome is None:
            raise MalformedError(f"status.status_str: unknown value {status_str!r}")
        if outcome is Outcome.ERROR:
            failure = _failure({})
    created_at = None
    prompt = item.get("prompt")
    if isinstance(prompt, list) and len(prompt) >= 4 and isinstance(prompt[3], dict):
        created_at = _ms(prompt[3].get("create_time"))
    return PromptFinished(
        at=at,
        prompt_id=prompt_id,
        outcome=outcome,
        started_at=started_at,
        ended_at=ended_at,
        created_at=created_at,
        cached_nodes=cached,
        failure=failure,
    )


def _failure(data: Mapping[str, Any]) -> FailureDetail:
    exception_type = data.get("exception_type")
    message = data.get("exception_message")
    node_type = data.get("node_type")
    node_id = data.get("node_id")
    return FailureDetail(
        node_id=clean_id(node_id) if node_id is not None else None,
        node_type=clean_id(node_type) if isinstance(node_type, str) and node_type else None,
        exception_type=(
            clean_id(exception_type) if isinstance(exception_type, str) and exception_type else None
        ),
        message=clean_text(message),
        error_type=classify(
            exception_type if isinstance(exception_type, str) else None,
            message if isinstance(message, str) else None,
        ),
    )


def parse_jobs_queue(body: Any, at: float) -> QueueSnapshot:
    """``GET /api/jobs?status=pending,in_progress`` → queue snapshot (cheap: never touches history)."""
    jobs = _list(_dict(body, "jobs response").get("jobs"), "jobs")
    running: list[QueueJob] = []
    pending: list[QueueJob] = []
    for job in jobs:
        job = _dict(job, "job")
        job_id = job.get("id")
        if not isinstance(job_id, str):
            raise MalformedError("job.id: expected a string")
        entry = QueueJob(prompt_id=job_id, created_at=_ms(job.get("create_time")))
        state = job.get("status")
        if state == "in_progress":
            running.append(entry)
        elif state == "pending":
            pending.append(entry)
        # Finished jobs (completed, failed, 0.38's cancelled) are not queue state; outcomes come
        # from /history only, so a "cancelled" job can never reach the failure counters from here.
    return QueueSnapshot(at=at, running=tuple(running), pending=tuple(pending))


def parse_queue(body: Any, at: float) -> QueueSnapshot:
    """``GET /queue`` (servers without ``/api/jobs``): items are ``[number, id, graph, extra, outputs]``."""
    body = _dict(body, "queue")

    def jobs(key: str) -> tuple[QueueJob, ...]:
        out = []
        for item in _list(body.get(key, []), key):
            if not isinstance(item, list) or len(item) < 2 or not isinstance(item[1], str):
                raise MalformedError(f"{key}: each item must be [number, prompt_id, ...]")
            extra = item[3] if len(item) > 3 and isinstance(item[3], dict) else {}
            out.append(QueueJob(prompt_id=item[1], created_at=_ms(extra.get("create_time"))))
        return tuple(out)

    return QueueSnapshot(at=at, running=jobs("queue_running"), pending=jobs("queue_pending"))


def parse_prompt_info(body: Any, at: float) -> QueueRemaining:
    """``GET /prompt`` → ``{"exec_info": {"queue_remaining": N}}``."""
    remaining = _dict(_dict(body, "prompt").get("exec_info"), "exec_info").get("queue_remaining")
    if isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 0:
        raise MalformedError("exec_info.queue_remaining: expected a non-negative integer")
    return QueueRemaining(at=at, remaining=remaining)


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_system_stats(body: Any, at: float) -> SystemStats:
    body = _dict(body, "system_stats")
    system = _dict(body.get("system"), "system")
    devices = []
    for device in _list(body.get("devices", []), "devices"):
        device = _dict(device, "device")
        devices.append(
            DeviceStats(
                name=str(device.get("name", "")),
                type=device.get("type") if isinstance(device.get("type"), str) else None,
                index=_opt_int(device.get("index")),
                vram_total=_opt_int(device.get("vram_total")),
                vram_free=_opt_int(device.get("vram_free")),
                torch_vram_total=_opt_int(device.get("torch_vram_total")),
                torch_vram_free=_opt_int(device.get("torch_vram_free")),
            )
        )
    argv = system.get("argv")
    python_version = str(system.get("python_version", ""))
    return SystemStats(
        at=at,
        version=str(system.get("comfyui_version", "")),
        # "3.11.7 (main, May  9 2026, ...) [GCC 12.2.0]": the build banner is noise for a label.
        python_version=python_version.split(" ", 1)[0],
        pytorch_version=str(system.get("pytorch_version", "")),
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else (),
        devices=tuple(devices),
    )


def parse_ws_text(text: str | bytes, at: float) -> tuple[list[QueueRemaining | ProgressSeen], bool]:
    """One websocket text frame → (events, whether it hints that history or the queue changed).

    Outcome events (execution_error, …) reach only the submitter, so they are never needed here;
    ``execution_interrupted`` and ``executing`` still hint that something finished or started.
    """
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"websocket frame is not JSON: {exc}") from None
    message = _dict(message, "websocket message")
    kind = message.get("type")
    data = message.get("data")
    if not isinstance(kind, str):
        raise MalformedError("websocket message: missing type")
    if kind == "status":
        status = _dict(_dict(data, "status data").get("status"), "status")
        exec_info = _dict(status.get("exec_info"), "exec_info")
        remaining = exec_info.get("queue_remaining")
        if isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 0:
            raise MalformedError("status: queue_remaining must be a non-negative integer")
        return [QueueRemaining(at=at, remaining=remaining)], True
    if kind in ("progress", "progress_state"):
        prompt_id = _dict(data, f"{kind} data").get("prompt_id")
        if not isinstance(prompt_id, str):
            raise MalformedError(f"{kind}: missing prompt_id")
        return [ProgressSeen(at=at, prompt_id=prompt_id)], False
    if kind in ("execution_interrupted", "execution_start", "execution_success", "execution_error"):
        return [], True
    return [], False
