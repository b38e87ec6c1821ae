"""The optional plugin's event stream format (v1) into small frozen records; pure, so the model can use it.

``parse_batch(payload)`` skips and counts malformed events (``ParseStats``) and unknown kinds
from newer plugins. The label values the model pre-creates at 0 (reject reasons, guard actions)
are defined here, next to the format that carries them. The transport is
``sources.plugin_stream``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

RejectReason = Literal[
    "value_not_in_list",
    "required_input_missing",
    "invalid_prompt",
    "prompt_no_outputs",
    "prompt_outputs_failed_validation",
    "invalid_input_type",
    "value_bigger_than_max",
    "value_smaller_than_min",
    "return_type_mismatch",
    "exception_during_validation",
    "no_prompt",
    # ComfyUI 0.38: a node type that does not exist (0.8.0 said invalid_prompt), a client prompt_id that
    # is not a canonical UUID (HTTP 400 before validation), and two new per-node errors
    "missing_node_type",
    "invalid_prompt_id",
    "dependency_cycle",
    "invalid_dynamic_input",
    "other",
]
REJECT_REASONS: tuple[str, ...] = get_args(RejectReason)  # every label value, to create them at 0
VRAM_GUARD_ACTIONS: tuple[str, ...] = ("warn", "free", "fail")
VRAM_GUARD_OUTCOMES: tuple[str, ...] = ("warned", "recovered", "insufficient", "failed")
FINISH_STATUSES: tuple[str, ...] = ("success", "error", "interrupted", "unknown")
_TEXT = 300
_ID = 120


@dataclass(frozen=True, slots=True)
class PromptSubmitted:
    seq: int
    ts: float
    prompt_id: str
    number: float | None
    create_time: float | None  # epoch seconds stamped by ComfyUI
    has_client_id: bool


@dataclass(frozen=True, slots=True)
class PromptStarted:
    seq: int
    ts: float  # exact start: when the worker took it off the queue
    prompt_id: str
    queue_wait_seconds: float | None


@dataclass(frozen=True, slots=True)
class PromptFinished:
    seq: int
    ts: float
    prompt_id: str | None
    status: str  # one of FINISH_STATUSES
    seconds: float | None
    exception_type: str | None
    node_id: str | None
    node_type: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class NodeError:
    node_id: str | None
    node_type: str | None
    reason: RejectReason
    input_name: str | None
    message: str


@dataclass(frozen=True, slots=True)
class PromptRejected:
    seq: int
    ts: float
    prompt_id: str | None
    reason: RejectReason  # the most telling node reason (value_not_in_list first), else the error type
    error_type: RejectReason  # ComfyUI's top-level error.type
    node_type: str | None
    input_name: str | None
    message: str
    partial: bool  # the prompt still ran, only some outputs were dropped
    node_errors: tuple[NodeError, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeStarted:
    seq: int
    ts: float
    prompt_id: str
    node_id: str
    node_type: str


@dataclass(frozen=True, slots=True)
class NodeFinished:
    seq: int
    ts: float
    prompt_id: str
    node_id: str
    node_type: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Progress:
    seq: int
    ts: float
    prompt_id: str
    node_id: str
    value: float
    max: float


@dataclass(frozen=True, slots=True)
class VramGuardTrip:
    seq: int
    ts: float
    prompt_id: str | None
    node_id: str | None
    action: str  # one of VRAM_GUARD_ACTIONS
    free_bytes: int
    required_bytes: int
    outcome: str  # one of VRAM_GUARD_OUTCOMES
    free_after_bytes: int | None
    device: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class StreamGap:
    expected_seq: int
    received_seq: int
    missed: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    old_boot_id: str | None
    new_boot_id: str


@dataclass(frozen=True, slots=True)
class PluginConnection:
    connected: bool
    detail: str  # "connected", "absent" (404), "unauthorized", "unreachable: ...", "bad response: ..."


Record = (
    PromptSubmitted
    | PromptStarted
    | PromptFinished
    | PromptRejected
    | NodeStarted
    | NodeFinished
    | Progress
    | VramGuardTrip
    | StreamGap
    | StreamReset
    | PluginConnection
)


@dataclass
class ParseStats:
    """Counts what ``parse_batch`` skipped; the client keeps one for its lifetime."""

    malformed: int = 0
    unknown_kind: int = 0


class Malformed(ValueError):
    """An event or payload that does not follow the plugin's v1 format."""


def _num(ev: Mapping[str, Any], key: str, *, optional: bool = False, minimum: float | None = None) -> Any:
    v = ev.get(key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and (minimum is None or v >= minimum):
        return v
    if optional and v is None:
        return None
    raise Malformed(f"{key}={v!r}")


def _str(ev: Mapping[str, Any], key: str, *, optional: bool = False, limit: int = _ID) -> Any:
    v = ev.get(key)
    if isinstance(v, str) and v:
        return v[:limit]
    if optional and (v is None or v == ""):
        return None
    raise Malformed(f"{key}={v!r}")


def _reason(value: Any) -> RejectReason:
    return value if isinstance(value, str) and value in REJECT_REASONS else "other"  # type: ignore[return-value]


def _text(message: Any, details: Any) -> str:
    msg = message if isinstance(message, str) else ""
    det = details if isinstance(details, str) else ""
    text = f"{msg} ({det})" if msg and det and det != msg else (msg or det)
    return text[:_TEXT]


def _rejected(ev: Mapping[str, Any], seq: int, ts: float) -> PromptRejected:
    raw = ev.get("node_errors")
    if not isinstance(raw, list):
        raise Malformed("node_errors")
    errors = tuple(
        NodeError(
            node_id=_str(e, "node_id", optional=True),
            node_type=_str(e, "node_type", optional=True),
            reason=_reason(e.get("type")),
            input_name=_str(e, "input_name", optional=True),
            message=_text(e.get("message"), e.get("details")),
        )
        for e in raw
        if isinstance(e, Mapping)
    )
    error_type = _reason(ev.get("error_type"))
    primary = next((e for e in errors if e.reason == "value_not_in_list"), errors[0] if errors else None)
    return PromptRejected(
        seq=seq,
        ts=ts,
        prompt_id=_str(ev, "prompt_id", optional=True),
        reason=primary.reason if primary else error_type,
        error_type=error_type,
        node_type=primary.node_type if primary else _str(ev, "node_type", optional=True),
        input_name=primary.input_name if primary else None,
        message=primary.message if primary else _text(ev.get("message"), ev.get("details")),
        partial=ev.get("partial") is True,
        node_errors=errors,
    )


def _trip(ev: Mapping[str, Any], seq: int, ts: float) -> VramGuardTrip:
    action, outcome = ev.get("action"), ev.get("outcome")
    if action not in VRAM_GUARD_ACTIONS or outcome not in VRAM_GUARD_OUTCOMES:
        raise Malformed(f"action={action!r} outcome={outcome!r}")
    after = _num(ev, "free_after_bytes", optional=True, minimum=0)
    return VramGuardTrip(
        seq=seq,
        ts=ts,
        prompt_id=_str(ev, "prompt_id", optional=True),
        node_id=_str(ev, "node_id", optional=True),
        action=action,
        free_bytes=int(_num(ev, "free_bytes", minimum=0)),
        required_bytes=int(_num(ev, "required_bytes", minimum=0)),
        outcome=outcome,
        free_after_bytes=int(after) if after is not None else None,
        device=_str(ev, "device", optional=True),
        message=_str(ev, "message", optional=True, limit=_TEXT),
    )


def _finished(ev: Mapping[str, Any], seq: int, ts: float) -> PromptFinished:
    status = ev.get("status")
    return PromptFinished(
        seq=seq,
        ts=ts,
        prompt_id=_str(ev, "prompt_id", optional=True),
        status=status if status in FINISH_STATUSES else "unknown",
        seconds=_num(ev, "seconds", optional=True, minimum=0),
        exception_type=_str(ev, "exception_type", optional=True, limit=200),
        node_id=_str(ev, "node_id", optional=True),
        node_type=_str(ev, "node_type", optional=True),
        message=_str(ev, "message", optional=True, limit=_TEXT),
    )


def _node(ev: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "prompt_id": _str(ev, "prompt_id"),
        "node_id": _str(ev, "node_id"),
        "node_type": _str(ev, "node_type", optional=True) or "unknown",
    }


_PARSERS: dict[str, Callable[[Mapping[str, Any], int, float], Any]] = {
    "prompt_submitted": lambda ev, seq, ts: PromptSubmitted(
        seq=seq,
        ts=ts,
        prompt_id=_str(ev, "prompt_id"),
        number=_num(ev, "number", optional=True),
        create_time=(ct / 1000.0 if (ct := _num(ev, "create_time_ms", optional=True)) is not None else None),
        has_client_id=ev.get("has_client_id") is True,
    ),
    "prompt_started": lambda ev, seq, ts: PromptStarted(
        seq=seq,
        ts=ts,
        prompt_id=_str(ev, "prompt_id"),
        queue_wait_seconds=_num(ev, "queue_wait_s", optional=True, minimum=0),
    ),
    "prompt_finished": _finished,
    "prompt_rejected": _rejected,
    "node_started": lambda ev, seq, ts: NodeStarted(seq=seq, ts=ts, **_node(ev)),
    "node_finished": lambda ev, seq, ts: NodeFinished(
        seq=seq, ts=ts, **_node(ev), seconds=_num(ev, "seconds", minimum=0)
    ),
    "progress": lambda ev, seq, ts: Progress(
        seq=seq,
        ts=ts,
        prompt_id=_str(ev, "prompt_id"),
        node_id=_str(ev, "node_id"),
        value=float(_num(ev, "value")),
        max=float(_num(ev, "max")),
    ),
    "vram_guard_trip": _trip,
}


def event_seq(event: Any) -> int | None:
    """The event's sequence number if it has a valid one (a positive int), else None."""
    seq = event.get("seq") if isinstance(event, Mapping) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 else None


def parse_event(event: Any, stats: ParseStats | None = None) -> Record | None:
    """One event -> one record; None for malformed (counted) or unknown kinds (counted apart)."""
    stats = stats if stats is not None else ParseStats()
    seq = event_seq(event)
    kind = event.get("kind") if isinstance(event, Mapping) else None
    try:
        if seq is None or not isinstance(kind, str):
            raise Malformed("seq/kind")
        parser = _PARSERS.get(kind)
        if parser is None:
            stats.unknown_kind += 1
            return None
        return parser(event, seq, float(_num(event, "ts", minimum=0)))
    except (Malformed, TypeError, ValueError, OverflowError):
        stats.malformed += 1
        return None


def parse_batch(payload: Any, stats: ParseStats | None = None) -> list[Record]:
    """All parseable events of one response, in order. Never raises."""
    events = payload.get("events") if isinstance(payload, Mapping) else None
    if not isinstance(events, list):
        if stats is not None:
            stats.malformed += 1
        return []
    out = []
    for event in events:
        record = parse_event(event, stats)
        if record is not None:
            out.append(record)
    return out
