"""Pure functions that turn ComfyUI's own structures into small, bounded event fields.

Kept free of ComfyUI imports so they can be unit-tested against the recorded 0.8.0 responses and
so that a shape change in ComfyUI makes a summary less detailed instead of raising into a hook.
Every string is truncated: a ``value_not_in_list`` detail lists every installed model and can be
many kilobytes, and the ring must stay small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_TEXT = 400
MAX_NODE_ERRORS = 20
_NODE_ID_IN_DETAILS = re.compile(r"Node ID '#([^']+)'")


def clip(value: Any, limit: int = MAX_TEXT) -> str | None:
    """``str(value)`` cut to ``limit`` characters; None stays None."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def class_type_of(prompt: Any, node_id: Any) -> str | None:
    """The class_type of ``node_id`` in an API-format graph, if there is one."""
    if isinstance(prompt, Mapping):
        node = prompt.get(node_id)
        if isinstance(node, Mapping) and isinstance(node.get("class_type"), str):
            return clip(node["class_type"], 120)
    return None


def rejection_fields(prompt_id: Any, prompt: Any, result: Any) -> dict[str, Any] | None:
    """Event fields for a ``validate_prompt`` result, or None when nothing was rejected.

    ``result`` is ComfyUI's ``(valid, error, good_outputs, node_errors)``. A valid prompt whose
    ``node_errors`` is non-empty still ran, but some of its outputs were dropped: that is reported
    as a rejection with ``partial: true``.
    """
    if not isinstance(result, (tuple, list)) or len(result) < 4:
        return None
    valid, error, _outputs, node_errors = result[0], result[1], result[2], result[3]
    node_errors = node_errors if isinstance(node_errors, Mapping) else {}
    if valid and not node_errors:
        return None
    error = error if isinstance(error, Mapping) else {}
    error_type = error.get("type") or ("prompt_outputs_failed_validation" if valid else "unknown")
    fields: dict[str, Any] = {
        "prompt_id": clip(prompt_id, 120),
        "error_type": clip(error_type, 80),
        "message": clip(error.get("message")),
        "details": clip(error.get("details")),
        "partial": bool(valid),
        "node_errors": list(_node_errors(node_errors)),
    }
    if not fields["node_errors"]:
        # invalid_prompt ("node X does not exist" / missing class_type) names the node only in details.
        match = _NODE_ID_IN_DETAILS.search(str(error.get("details") or ""))
        if match:
            fields["node_id"] = clip(match.group(1), 120)
            fields["node_type"] = class_type_of(prompt, match.group(1))
    return fields


def no_prompt_fields() -> dict[str, Any]:
    """Event fields for a POST /prompt body without a ``prompt`` key (rejected before validation)."""
    return {
        "prompt_id": None,
        "error_type": "no_prompt",
        "message": "No prompt provided",
        "details": None,
        "partial": False,
        "node_errors": [],
    }


def invalid_prompt_id_fields(prompt_id: Any, reason: str) -> dict[str, Any]:
    """Event fields for a client prompt_id ComfyUI 0.38+ refuses (HTTP 400 before validation)."""
    return {
        "prompt_id": clip(prompt_id, 120),
        "error_type": "invalid_prompt_id",
        "message": "prompt_id must be a valid UUID",
        "details": clip(reason),
        "partial": False,
        "node_errors": [],
    }


def _node_errors(node_errors: Mapping[Any, Any]) -> Iterable[dict[str, Any]]:
    count = 0
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        errors = entry.get("errors")
        for err in errors if isinstance(errors, list) else []:
            if count >= MAX_NODE_ERRORS:
                return
            if not isinstance(err, Mapping):
                continue
            extra = err.get("extra_info")
            input_name = extra.get("input_name") if isinstance(extra, Mapping) else None
            count += 1
            yield {
                "node_id": clip(node_id, 120),
                "node_type": clip(entry.get("class_type"), 120),
                "type": clip(err.get("type"), 80),
                "message": clip(err.get("message")),
                "details": clip(err.get("details")),
                "input_name": clip(input_name, 120),
            }


def finish_fields(status: Any) -> dict[str, Any]:
    """Outcome fields from ``PromptQueue.ExecutionStatus`` (status_str, completed, messages).

    The last execution message decides: success, error (with exception type, node and the first
    line of the message) or interrupted; ``None`` or an unknown shape gives ``unknown``.
    """
    out: dict[str, Any] = {
        "status": "unknown",
        "exception_type": None,
        "node_id": None,
        "node_type": None,
        "message": None,
    }
    messages = getattr(status, "messages", None)
    status_str = getattr(status, "status_str", None)
    last_event, last_data = None, None
    for entry in messages if isinstance(messages, (list, tuple)) else []:
        if isinstance(entry, (list, tuple)) and len(entry) >= 2 and str(entry[0]).startswith("execution_"):
            last_event, last_data = entry[0], entry[1]
    data = last_data if isinstance(last_data, Mapping) else {}
    if last_event == "execution_interrupted":
        out["status"] = "interrupted"
    elif last_event == "execution_error":
        out["status"] = "error"
        out["exception_type"] = clip(data.get("exception_type"), 200)
        message = data.get("exception_message")
        out["message"] = clip(str(message).strip().splitlines()[0]) if message else None
    elif status_str in ("success", "error"):
        out["status"] = status_str
    if out["status"] in ("error", "interrupted"):
        out["node_id"] = clip(data.get("node_id"), 120)
        out["node_type"] = clip(data.get("node_type"), 120)
    return out
