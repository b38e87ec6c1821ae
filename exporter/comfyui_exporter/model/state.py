"""The state of one ComfyUI instance, and the reducer that applies events to it.

``InstanceState.apply`` is the only mutator. It does no I/O and never reads a clock (time comes
from the events), so a recorded list of events always produces the same state; the collector
renders this state at scrape time. Every map that grows with input is bounded: prompt ids,
node types and exception types never accumulate without limit.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .events import (
    DeviceStats,
    ErrorType,
    Event,
    HistoryBaseline,
    HistoryGap,
    MalformedMessage,
    NodeExecuted,
    Outcome,
    PluginState,
    ProgressSeen,
    PromptFinished,
    PromptRejected,
    PromptStarted,
    QueueRemaining,
    QueueSnapshot,
    Reconnected,
    RequestObserved,
    RestartDetected,
    SystemStats,
    VramGuardTripped,
    WebsocketState,
)
from .parsers import clean_id
from .plugin_state import PluginView

EXECUTION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

MAX_NODE_TYPES = 64
MAX_EXCEPTION_TYPES = 32
# Node types and exception types are capped separately; their combinations are capped too, so the
# worst case is a few hundred series per instance, not 64 × 5 × 32.
MAX_NODE_FAILURE_SERIES = 256
# 0.38 lists every torch device of the host in /system_stats (0.8.0 and older: one). The names are
# stable per device; past the cap the rest are summed into one ``other`` series.
MAX_DEVICES = 16
DEVICE_FIELDS = ("vram_total", "vram_free", "torch_vram_total", "torch_vram_free")
OTHER = "other"
UNKNOWN = "unknown"
RECENT_FAILURES = 100
MAX_PROGRESS_TRACKED = 64
# Prompts that left the queue without (yet) a history entry: a restart right after means they are lost.
MAX_VANISHED = 256
VANISHED_SECONDS = 120.0
LOST_STATES = ("running", "pending")


class Histogram:
    """Bucket counts kept in state so the collector can render them without prometheus_client objects."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        value = max(value, 0.0)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, cumulative count)]`` including ``+Inf``, as exposition wants it."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else _fmt(bound), running))
        return out


def _fmt(value: float) -> str:
    return repr(float(value))


class CappedLabels:
    """First-come label values up to a cap, then ``other``: keeps series counts bounded."""

    __slots__ = ("cap", "values")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.values: set[str] = set()

    def admit(self, value: str | None) -> str:
        value = value or UNKNOWN
        if value in self.values:
            return value
        if len(self.values) < self.cap:
            self.values.add(value)
            return value
        return OTHER


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One entry of ``/failures``: the details that must never be labels."""

    comfyui: str
    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str | None
    error_type: str
    message: str
    started_at: float | None
    finished_at: float | None
    kind: str = "failure"  # or "rejection" / "vram_guard" (both from the plugin)
    input_name: str | None = None

    def as_json(self) -> dict[str, object]:
        # Text fields were cleaned where they entered (parsers.py, sources/plugin.py): they reach chat.
        return {
            "kind": self.kind,
            "input_name": self.input_name,
            "comfyui": self.comfyui,
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.node_type,
            "exception_type": self.exception_type,
            "error_type": self.error_type,
            "message": self.message,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class LostPrompts:
    """The prompts a restart lost: in neither ComfyUI's history nor its queue afterwards."""

    at: float
    running: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass
class InstanceState:
    name: str
    up: bool = False
    baseline_taken: bool = False
    system: SystemStats | None = None
    # Queue: ids → when the exporter first saw them in that state (ComfyUI gives no start time).
    running: dict[str, float] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)
    progress: OrderedDict[str, float] = field(default_factory=OrderedDict)
    finished: int = 0
    interrupted: int = 0
    cached_nodes: int = 0
    restarts: int = 0
    history_gaps: int = 0
    failures: dict[str, int] = field(default_factory=lambda: {e.value: 0 for e in ErrorType})
    last_failure: dict[str, float] = field(default_factory=lambda: {e.value: 0.0 for e in ErrorType})
    last_finish: float = 0.0
    node_failures: dict[tuple[str, str, str], int] = field(default_factory=dict)
    node_types: CappedLabels = field(default_factory=lambda: CappedLabels(MAX_NODE_TYPES))
    exception_types: CappedLabels = field(default_factory=lambda: CappedLabels(MAX_EXCEPTION_TYPES))
    device_labels: CappedLabels = field(default_factory=lambda: CappedLabels(MAX_DEVICES))
    execution: dict[str, Histogram] = field(
        default_factory=lambda: {o.value: Histogram(EXECUTION_BUCKETS) for o in Outcome}
    )
    queue_wait: Histogram = field(default_factory=lambda: Histogram(QUEUE_WAIT_BUCKETS))
    recent_failures: deque[FailureRecord] = field(default_factory=lambda: deque(maxlen=RECENT_FAILURES))
    websocket_connected: bool = False
    websocket_reconnects: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    request_failures: dict[str, int] = field(default_factory=dict)
    request_seconds: dict[str, Histogram] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    plugin: PluginView = field(default_factory=PluginView)
    exact_starts: OrderedDict[str, float] = field(default_factory=OrderedDict)
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOST_STATES, 0))
    last_lost: LostPrompts | None = None
    # prompt id -> (state it left, when); dropped when its history entry arrives or after VANISHED_SECONDS
    vanished: OrderedDict[str, tuple[str, float]] = field(default_factory=OrderedDict)
    unreachable_since: float | None = None

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        match event:
            case PromptFinished():
                self._finished(event)
            case QueueSnapshot():
                self._queue(event)
            case QueueRemaining(remaining=0):
                # An empty queue needs no request to know: both lists are empty now.
                self._vanish(self.running, "running", event.at)
                self._vanish(self.pending, "pending", event.at)
                self.running.clear()
                self.pending.clear()
            case QueueRemaining():
                pass
            case ProgressSeen(prompt_id=prompt_id, at=at):
                self.progress[prompt_id] = at
                self.progress.move_to_end(prompt_id)
                while len(self.progress) > MAX_PROGRESS_TRACKED:
                    self.progress.popitem(last=False)
            case SystemStats():
                self.system = event
            case RequestObserved():
                self._request(event)
            case WebsocketState(connected=connected, reconnect=reconnect):
                self.websocket_connected = connected
                if reconnect:
                    self.websocket_reconnects += 1
            case MalformedMessage(source=source):
                self.malformed[source] = self.malformed.get(source, 0) + 1
            case HistoryGap():
                self.history_gaps += 1
            case RestartDetected():
                self.restarts += 1
                self._lost(event.at, queued=True, since=event.at - VANISHED_SECONDS)
                self.running.clear()
                self.pending.clear()
                self.progress.clear()
            case Reconnected(at=at):
                # running/pending are the new truth already; what vanished across the outage is lost
                since = self.unreachable_since if self.unreachable_since is not None else at
                self._lost(at, queued=False, since=since)
                self.unreachable_since = None
            case HistoryBaseline():
                self.baseline_taken = True
            case PluginState():
                self.plugin.connection(event)
            case PromptStarted(prompt_id=prompt_id, started_at=started_at):
                self.exact_starts[prompt_id] = started_at
                while len(self.exact_starts) > MAX_PROGRESS_TRACKED:
                    self.exact_starts.popitem(last=False)
                if prompt_id in self.running:
                    self.running[prompt_id] = started_at
            case PromptRejected():
                self._rejected(event)
            case NodeExecuted(node_type=node_type):
                self.plugin.node_executed(event, self.node_types.admit(node_type), Histogram)
            case VramGuardTripped():
                self._guard_tripped(event)

    def _vanish(self, prompts: dict[str, float], state: str, at: float) -> None:
        for prompt_id in prompts:
            self.vanished[prompt_id] = (state, at)
            self.vanished.move_to_end(prompt_id)
        while len(self.vanished) > MAX_VANISHED:
            self.vanished.popitem(last=False)

    def _lost(self, at: float, queued: bool, since: float) -> None:
        """What left the queue since ``since`` without a history entry (and, for a proven restart,
        what is still listed as queued from before it)."""
        lost: dict[str, list[str]] = {state: [] for state in LOST_STATES}
        for prompt_id, (state, when) in self.vanished.items():
            listed = prompt_id in self.running or prompt_id in self.pending
            if when >= since and not listed:
                lost[state].append(prompt_id)
        if queued:
            lost["running"].extend(self.running)
            lost["pending"].extend(self.pending)
        self.vanished.clear()
        for state in LOST_STATES:
            self.lost[state] += len(lost[state])
        if any(lost.values()):
            self.last_lost = LostPrompts(
                at, tuple(clean_id(p) for p in lost["running"]), tuple(clean_id(p) for p in lost["pending"])
            )

    def _finished(self, event: PromptFinished) -> None:
        self.finished += 1
        self.vanished.pop(event.prompt_id, None)
        self.running.pop(event.prompt_id, None)
        self.pending.pop(event.prompt_id, None)
        self.progress.pop(event.prompt_id, None)
        end = event.ended_at if event.ended_at is not None else event.at
        self.last_finish = max(self.last_finish, end)
        self.cached_nodes += event.cached_nodes
        if event.started_at is not None and event.ended_at is not None:
            self.execution[event.outcome.value].observe(event.ended_at - event.started_at)
        if event.started_at is not None and event.created_at is not None:
            self.queue_wait.observe(event.started_at - event.created_at)
        if event.outcome is Outcome.INTERRUPTED:
            self.interrupted += 1
        elif event.outcome is Outcome.ERROR and event.failure is not None:
            failure = event.failure
            error_type = failure.error_type.value
            self.failures[error_type] += 1
            self.last_failure[error_type] = max(self.last_failure[error_type], end)
            key = (
                self.node_types.admit(failure.node_type),
                error_type,
                self.exception_types.admit(failure.exception_type),
            )
            if key not in self.node_failures and len(self.node_failures) >= MAX_NODE_FAILURE_SERIES:
                key = (OTHER, error_type, OTHER)
            self.node_failures[key] = self.node_failures.get(key, 0) + 1
            self.recent_failures.append(
                FailureRecord(
                    comfyui=self.name,
                    prompt_id=clean_id(event.prompt_id),  # client-chosen: kept raw only for matching
                    node_id=failure.node_id,
                    node_type=failure.node_type,
                    exception_type=failure.exception_type,
                    error_type=error_type,
                    message=failure.message,
                    started_at=event.started_at,
                    finished_at=event.ended_at,
                )
            )

    def _rejected(self, event: PromptRejected) -> None:
        reason = self.plugin.rejected(event)
        self.recent_failures.append(
            FailureRecord(
                comfyui=self.name,
                prompt_id=event.prompt_id or "",
                node_id=event.node_id,
                node_type=event.node_type,
                exception_type=None,
                error_type=reason,
                message=event.message,
                started_at=None,
                finished_at=event.at,
                kind="rejection",
                input_name=event.input_name,
            )
        )

    def _guard_tripped(self, event: VramGuardTripped) -> None:
        self.plugin.tripped(event)
        self.recent_failures.append(
            FailureRecord(
                comfyui=self.name,
                prompt_id=event.prompt_id or "",
                node_id=event.node_id,
                node_type="Health Check: VRAM",
                exception_type=None,
                error_type=f"vram_guard_{event.outcome}",
                message=event.message
                or f"free {event.free_bytes} bytes < required {event.required_bytes} bytes ({event.action})",
                started_at=None,
                finished_at=event.at,
                kind="vram_guard",
            )
        )

    def _queue(self, event: QueueSnapshot) -> None:
        running = {}
        for job in event.running:
            exact = self.exact_starts.get(job.prompt_id)
            if exact is not None:  # the plugin saw the dequeue itself
                running[job.prompt_id] = exact
                continue
            # Keep the first sighting; a progress event may have revealed the start even earlier.
            seen = self.running.get(job.prompt_id) or self.progress.get(job.prompt_id) or event.at
            running[job.prompt_id] = min(seen, event.at)
        pending = {}
        for job in event.pending:
            pending[job.prompt_id] = job.created_at or self.pending.get(job.prompt_id) or event.at
        gone = {p: 0.0 for p in self.running if p not in running and p not in pending}
        self._vanish(gone, "running", event.at)
        gone = {p: 0.0 for p in self.pending if p not in running and p not in pending}
        self._vanish(gone, "pending", event.at)
        self.running = running
        self.pending = pending

    def _request(self, event: RequestObserved) -> None:
        endpoint = event.endpoint
        self.up = event.ok
        if not event.ok and self.unreachable_since is None:
            self.unreachable_since = event.at
        self.requests[endpoint] = self.requests.get(endpoint, 0) + 1
        if not event.ok:
            self.request_failures[endpoint] = self.request_failures.get(endpoint, 0) + 1
        else:
            self.request_failures.setdefault(endpoint, 0)
        histogram = self.request_seconds.get(endpoint)
        if histogram is None:
            histogram = self.request_seconds[endpoint] = Histogram(REQUEST_BUCKETS)
        histogram.observe(event.seconds)

    # Views used by the collector; ``now`` is the scrape time.
    def running_age(self, now: float) -> float:
        return max(0.0, now - min(self.running.values())) if self.running else 0.0

    def progress_age(self, now: float) -> float | None:
        seen = [self.progress[p] for p in self.running if p in self.progress]
        return max(0.0, now - max(seen)) if seen else None

    def oldest_pending_age(self, now: float) -> float:
        return max(0.0, now - min(self.pending.values())) if self.pending else 0.0

    def devices(self) -> tuple[DeviceStats, ...]:
        return self.system.devices if self.system else ()

    def device_series(self) -> dict[str, dict[str, int]]:
        """``{device label: {field: bytes}}`` for the per-device gauges, the label set capped.

        Devices past the cap (first come, first kept) are summed into ``other``, so a host with
        dozens of devices still gives a bounded number of series and no duplicates.
        """
        out: dict[str, dict[str, int]] = {}
        for device in self.devices():
            label = self.device_labels.admit(device.name)
            values = out.setdefault(label, {})
            for name in DEVICE_FIELDS:
                value = getattr(device, name)
                if value is not None:
                    values[name] = values.get(name, 0) + value if label == OTHER else value
        return out
