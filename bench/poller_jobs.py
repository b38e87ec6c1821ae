"""Baseline (b): a poller of ``GET /api/jobs?limit=50`` every 5 s (ComfyUI ≥ 0.6.0).

Compact responses (job summaries, no workflows), so it looks cheap on the wire — but ComfyUI
normalises and sorts *every* history entry for each call (comfyui-protocol.md §8), so its server time
grows with history size even with a small ``limit``. Sorted by create_time, so a burst of more than
``limit`` completions between two polls is partly missed; interrupted prompts are ``failed`` without
``execution_error`` in 0.8.0.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass, field

from .common import ensure_paths

ensure_paths()

from comfyui_exporter.classify import classify  # noqa: E402


@dataclass
class JobsPoller:
    base_url: str
    interval: float = 5.0
    limit: int = 50
    parse: bool = True
    seen: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    finished: int = 0
    polls: int = 0
    bytes_received: int = 0

    def poll_once(self) -> int:
        url = f"{self.base_url}/api/jobs?limit={self.limit}"
        with urllib.request.urlopen(url, timeout=120) as response:
            raw = response.read()
        self.polls += 1
        self.bytes_received += len(raw)
        if self.parse:
            self._diff(json.loads(raw).get("jobs", []))
        return len(raw)

    def _diff(self, jobs: list) -> None:
        first = self.polls == 1
        for job in jobs:
            if job.get("status") not in ("completed", "failed", "cancelled") or job["id"] in self.seen:
                continue
            self.seen.add(job["id"])
            if first:
                continue
            self.finished += 1
            error = job.get("execution_error")
            if job.get("status") == "failed" and isinstance(error, dict):
                error_type = classify(error.get("exception_type"), error.get("exception_message")).value
                self.failures[error_type] = self.failures.get(error_type, 0) + 1

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.interval)
