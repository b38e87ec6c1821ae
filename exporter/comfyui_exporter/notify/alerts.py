"""Event alerts: what a counted failure, rejection or lost prompt becomes in Alertmanager's API.

Pure (no I/O, no clock: times come from the records), so the cooldown logic is tested without a
network. The cooldown lives in the alert identity, because Alertmanager's grouping alone cannot
give "first failure now, the rest folded, the next burst now again": a group that already
flushed holds a new alert until its next ``group_interval`` tick (measured 291.7 s).

Per class (comfyui + alertname + error_type) the builder keeps one *window* of ``cooldown``
seconds, opened by the first failure. Every alert of a window carries the label
``event_window`` (the window's start), and the event route groups by it, so each window is a
fresh Alertmanager group that flushes after ``group_wait``:

* the first failure of a window is alert ``occurrence="first"``: notified within ~1 s;
* every further failure in the window re-posts ONE alert ``occurrence="repeated"`` with the count
  and the newest prompt ids; it joins the already-flushed group, so Alertmanager sends it at the
  group's next tick (``group_interval`` = cooldown): at most one more message per window;
* the first failure after the window opens a new window: a new group, notified within ~1 s.

``endsAt`` is ``startsAt + ttl`` (the folded alert: the window's end + ttl, so it is still active
at the tick that sends it); Alertmanager resolves them by itself and nothing is re-sent.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from ..model.state import FailureRecord

FAILED = "ComfyUIPromptFailed"
REJECTED = "ComfyUIPromptRejected"
LOST = "ComfyUIPromptsLost"
EVENT_ALERTNAMES = (FAILED, REJECTED, LOST)
CRITICAL_ERROR_TYPES = frozenset({"oom", "cuda_error"})  # as the rules: ComfyUIOutOfMemory, ComfyUICudaError
MESSAGE_CHARS = 400
MAX_PROMPT_IDS = 10
RUNBOOKS = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md"
_RUNBOOK = {FAILED: "comfyuipromptfailed", REJECTED: "comfyuipromptrejected", LOST: "comfyuipromptslost"}
_WHAT = {
    "oom": "device out of memory",
    "cuda_error": "CUDA/driver error",
    "model_not_found": "a model file is missing",
    "model_load_error": "a model could not be loaded",
    "node_exception": "a node raised an exception",
}


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cut_message(text: str, limit: int = MESSAGE_CHARS) -> str:
    """The first line whole, then the following text up to ``limit`` characters, cut at a word.

    ``text`` is already cleaned as /failures shows it (``model.parsers.clean_text``: control
    characters out, at most 500 characters). The first line of an exception is the part a person
    reads; the relay used to cut at 200 characters mid-word.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    first, _, rest = text.partition("\n")
    if len(first) >= limit or not rest:
        return first + (" …" if rest else "")
    room = limit - len(first) - 1
    tail = rest[: room + 1]
    if len(rest) > room:
        boundary = max(tail.rfind(" "), tail.rfind("\n"))
        tail = tail[:boundary] if boundary > 0 else ""
    return (first + "\n" + tail.rstrip()).rstrip() + " …"


@dataclass
class _Window:
    start: float
    node_type: str
    count: int = 0  # failures folded after the first
    first_folded: float = 0.0
    prompt_ids: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_PROMPT_IDS))


class AlertBuilder:
    """Turns the records of one exporter into Alertmanager alerts (``POST /api/v2/alerts`` items)."""

    def __init__(
        self,
        external_url: str,
        ttl: float = 300.0,
        cooldown: float = 300.0,
        extra_labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.external_url = external_url.rstrip("/")
        self.extra_labels = dict(extra_labels)
        self.ttl = ttl
        self.cooldown = cooldown
        self._windows: dict[tuple[str, str, str], _Window] = {}

    # -- records in, alerts out
    def failure(self, record: FailureRecord, observed: float) -> dict[str, Any]:
        """A counted failure (``kind="failure"``) or a plugin rejection (``kind="rejection"``).

        ``observed`` is when the exporter counted it; ``startsAt`` is ComfyUI's own time of the
        failure, but never later than ``observed`` and ``endsAt`` never earlier than ``observed + ttl``
        (a ComfyUI clock that is off must not make an alert that is resolved on arrival).
        """
        alertname = REJECTED if record.kind == "rejection" else FAILED
        at = min(record.finished_at or observed, observed)
        key = (record.comfyui, alertname, record.error_type)
        window = self._windows.get(key)
        labels = {
            "alertname": alertname,
            "comfyui": record.comfyui,
            "error_type": record.error_type,
            "severity": self._severity(alertname, record.error_type),
        }
        if alertname == REJECTED:
            labels["reason"] = record.error_type  # the rule ComfyUIPromptRejections has `reason`
        if window is None or at >= window.start + self.cooldown or at < window.start:
            window = self._windows[key] = _Window(start=at, node_type=record.node_type or "unknown")
            labels.update(node_type=window.node_type, event_window=rfc3339(window.start), occurrence="first")
            return self._alert(labels, self._annotations(alertname, record), at, observed + self.ttl)
        window.count += 1
        window.first_folded = window.first_folded or at
        window.prompt_ids.appendleft(record.prompt_id)
        labels.update(node_type=window.node_type, event_window=rfc3339(window.start), occurrence="repeated")
        annotations = self._annotations(alertname, record)
        annotations["count"] = str(window.count)
        annotations["prompt_ids"] = ",".join(window.prompt_ids)
        more = f"{window.count} more since the first (newest first: {annotations['prompt_ids']})"
        annotations["summary"] = f"{annotations['summary']} ({window.count} more in the cooldown)"
        annotations["description"] = f"{annotations['description']} {more}."
        ends = max(observed, window.start + self.cooldown) + self.ttl
        return self._alert(labels, annotations, window.first_folded, ends)

    def lost(self, comfyui: str, at: float, running: list[str], pending: list[str]) -> dict[str, Any]:
        """A ComfyUI restart that lost prompts: they are in neither its history nor its queue now."""
        ids = [*running, *pending]
        shown = ",".join(ids[:MAX_PROMPT_IDS])
        labels = {
            "alertname": LOST,
            "comfyui": comfyui,
            "severity": "warning",
            "event_window": rfc3339(at),
            "occurrence": "first",
        }
        description = (
            f"ComfyUI {comfyui} lost {len(running)} running and {len(pending)} pending prompt(s) to a "
            f"restart: {shown}{' …' if len(ids) > MAX_PROMPT_IDS else ''}. They were queued before it "
            "stopped answering and are in neither its history nor its queue now; resubmit them."
        )
        annotations = {
            "summary": "A ComfyUI restart lost queued prompts.",
            "description": description,
            "prompt_id": ids[0] if ids else "",
            "prompt_ids": shown,
            "count": str(len(ids)),
            "failures_url": self._failures_url(comfyui),
            "runbook_url": f"{RUNBOOKS}#{_RUNBOOK[LOST]}",
        }
        return self._alert(labels, annotations, at, at + self.ttl)

    # -- pieces
    @staticmethod
    def _severity(alertname: str, error_type: str) -> str:
        return "critical" if alertname == FAILED and error_type in CRITICAL_ERROR_TYPES else "warning"

    def _failures_url(self, comfyui: str) -> str:
        return f"{self.external_url}/failures?{urlencode({'comfyui': comfyui})}"

    def _annotations(self, alertname: str, record: FailureRecord) -> dict[str, str]:
        message = cut_message(record.message)
        exception = record.exception_type or ""
        node = f"node {record.node_id} ({record.node_type})" if record.node_id else (record.node_type or "")
        if alertname == REJECTED:
            summary = "ComfyUI rejected a submitted workflow."
            what = f"rejected prompt {record.prompt_id or '(no id)'} with reason {record.error_type}"
            if record.input_name:
                node = f"{node} input {record.input_name}".strip()
        else:
            summary = f"A ComfyUI prompt failed: {record.error_type}."
            what = (
                f"prompt {record.prompt_id} failed with error_type {record.error_type} "
                f"({_WHAT.get(record.error_type, 'failure')})"
            )
        first_line = message.partition("\n")[0]
        head = f"{exception}: {first_line}" if exception else first_line
        description = f"ComfyUI {record.comfyui}: {what}{' at ' + node if node else ''}. {head}".strip()
        return {
            "summary": summary,
            "description": _one_space(description),
            "exception_type": exception,
            "exception_message": message,
            "prompt_id": record.prompt_id,
            "node_id": record.node_id or "",
            "failures_url": self._failures_url(record.comfyui),
            "runbook_url": f"{RUNBOOKS}#{_RUNBOOK[alertname]}",
        }

    def _alert(
        self, labels: dict[str, str], annotations: dict[str, str], starts: float, ends: float
    ) -> dict[str, Any]:
        return {
            "labels": {**self.extra_labels, **labels},
            "annotations": {k: v for k, v in annotations.items() if v != ""},
            "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends),
            "generatorURL": self._failures_url(labels["comfyui"]),
        }


def _one_space(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text)
