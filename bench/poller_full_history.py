"""Baseline (a): the usual monitoring sidecar that polls the *whole* ``GET /history`` every 5 s.

This is what most ComfyUI monitors do: complete (every outcome is in history), simple, and
O(history bytes) per poll — ComfyUI serialises every entry, 50 KB frontend workflows included, on
its event loop each time. Kept deliberately small and faithful: one request per interval, new
ids are diffed against the ids seen before, failures counted by error class.
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
class FullHistoryPoller:
    base_url: str
    interval: float = 5.0
    parse: bool = True
    seen: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    finished: int = 0
    polls: int = 0
    bytes_received: int = 0

    def poll_once(self) -> int:
        """One poll; returns the response size. ``parse=False`` reads the bytes only (ComfyUI's
        side of the cost is the same; the poller's own JSON decoding is not ComfyUI's problem)."""
        with urllib.request.urlopen(self.base_url + "/history", timeout=120) as response:
            raw = response.read()
        self.polls += 1
        self.bytes_received += len(raw)
        if self.parse:
            self._diff(json.loads(raw))
        return len(raw)

    def _diff(self, history: dict) -> None:
        first = not self.seen and self.polls == 1
        for prompt_id, item in history.items():
            if prompt_id in self.seen:
                continue
            self.seen.add(prompt_id)
            if first:
                continue  # what was there before we started is not news
            self.finished += 1
            messages = item.get("status", {}).get("messages", [])
            final = messages[-1] if messages else None
            if final and final[0] == "execution_error":
                data = final[1]
                error_type = classify(data.get("exception_type"), data.get("exception_message")).value
                self.failures[error_type] = self.failures.get(error_type, 0) + 1

    def run(self, stop: threading.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.interval)
