"""Typed events: the only way sources tell the state what they saw.

Sources do I/O and parsing; the reducer in ``state.py`` only ever sees these values. Every event
carries the wall-clock time at which the exporter observed it (``at``, seconds since the epoch), so
the reducer never reads a clock and replaying a list of events is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """How a prompt that reached ComfyUI's history ended."""

    SUCCESS = "success"
    ERROR = "error"
    INTERRUPTED = "interrupted"


class ErrorType(StrEnum):
    """Bounded failure classes; alert rules route on these values, so the set is closed."""

    OOM = "oom"
    CUDA_ERROR = "cuda_error"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_LOAD_ERROR = "model_load_error"
    NODE_EXCEPTION = "node_exception"


@dataclass(frozen=True, slots=True)
class FailureDetail:
    """What ComfyUI said about a failed node; only ``node_type``/``exception_type`` become labels."""

    node_id: str | None
    node_type: str | None
    exception_type: str | None
    message: str
    error_type: ErrorType


@dataclass(frozen=True, slots=True)
class PromptFinished:
    """A prompt seen for the first time in ``/history`` (completion order)."""

    at: float
    prompt_id: str
    outcome: Outcome
    started_at: float | None
    ended_at: float | None
    created_at: float | None
    cached_nodes: int = 0
    failure: FailureDetail | None = None


@dataclass(frozen=True, slots=True)
class QueueJob:
    """One pending or running prompt, as the queue endpoints describe it."""

    prompt_id: str
    created_at: float | None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The whole queue at one instant: replaces, never merges with, the previous snapshot."""

    at: float
    running: tuple[QueueJob, ...]
    pending: tuple[QueueJob, ...]


@dataclass(frozen=True, slots=True)
class QueueRemaining:
    """``status`` broadcast (or ``GET /prompt``): pending + running, without ids."""

    at: float
    remaining: int


@dataclass(frozen=True, slots=True)
class ProgressSeen:
    """``progress``/``progress_state`` for a prompt; ComfyUI broadcasts these only without client_id."""

    at: float
    prompt_id: str


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One torch device of ``/system_stats``."""

    name: str
    type: str | None
    index: int | None
    vram_total: int | None
    vram_free: int | None
    torch_vram_total: int | None
    torch_vram_free: int | None


@dataclass(frozen=True, slots=True)
class SystemStats:
    at: float
    version: str
    python_version: str
    pytorch_version: str
    argv: tuple[str, ...]
    devices: tuple[DeviceStats, ...]


@dataclass(frozen=True, slots=True)
class RequestObserved:
    """One HTTP request to ComfyUI; ``ok`` drives ``comfyui_up``."""

    at: float
    endpoint: str
    seconds: float
    ok: bool


@dataclass(frozen=True, slots=True)
class WebsocketState:
    at: float
    connected: bool
    reconnect: bool = False


@dataclass(frozen=True, slots=True)
class MalformedMessage:
    at: float
    source: str


@dataclass(frozen=True, slots=True)
class HistoryGap:
    """The poller could not prove that nothing was missed between two polls."""

    at: float


@dataclass(frozen=True, slots=True)
class RestartDetected:
    at: float


@dataclass(frozen=True, slots=True)
class Reconnected:
    """ComfyUI answers again after requests failed, and history and queue were just re-read.

    A restart with an empty history cannot be proven from /history; prompts that were queued before
    the outage and are in neither history nor queue now are lost all the same.
    """

    at: float


@dataclass(frozen=True, slots=True)
class HistoryBaseline:
    """The first successful history poll: what is already there is history, not news."""

    at: float
    prompt_ids: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PluginState:
    """Whether the in-ComfyUI plugin's event stream is being read."""

    at: float
    connected: bool


@dataclass(frozen=True, slots=True)
class PromptStarted:
    """Exact start of a prompt, from the plugin (the sidecar view only knows when it first saw it)."""

    at: float
    prompt_id: str
    started_at: float


@dataclass(frozen=True, slots=True)
class PromptRejected:
    """A submission ComfyUI refused at validation (HTTP 400): visible only to the plugin."""

    at: float
    prompt_id: str | None
    reason: str
    node_id: str | None
    node_type: str | None
    input_name: str | None
    message: str


@dataclass(frozen=True, slots=True)
class NodeExecuted:
    at: float
    node_type: str
    seconds: float


@dataclass(frozen=True, slots=True)
class VramGuardTripped:
    """The "Health Check: VRAM" node found less free memory than its threshold."""

    at: float
    prompt_id: str | None
    node_id: str | None
    action: str
    outcome: str
    free_bytes: int
    required_bytes: int
    message: str


Event = (
    PromptFinished
    | QueueSnapshot
    | QueueRemaining
    | ProgressSeen
    | SystemStats
    | RequestObserved
    | WebsocketState
    | MalformedMessage
    | HistoryGap
    | RestartDetected
    | Reconnected
    | HistoryBaseline
    | PluginState
    | PromptStarted
    | PromptRejected
    | NodeExecuted
    | VramGuardTripped
)
