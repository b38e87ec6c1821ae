"""What the two baseline pollers share: one GET per interval, byte accounting, failure counting.

Each baseline only says which URL it asks and how it finds new finished prompts in the answer.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .common import ensure_paths

ensure_paths()

from comfyui_exporter.model.classify import classify  # noqa: E402


@dataclass
class BaselinePoller:
    base_url: str
    interval: float = 5.0
    parse: bool = True
    seen: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)
    finished: int = 0
    polls: int = 0
    bytes_received: int = 0

    def url(self) -> str:
        raise NotImplementedError

    def diff(self, body: Any) -> None:
        raise NotImplementedError

    def poll_once(self) -> int:
        """One poll; returns the response size. ``parse=False`` reads the bytes only (ComfyUI's
        side of the cost is the same; the poller's own JSON decoding is not ComfyUI's problem)."""
        with urllib.request.urlopen(self.url(), timeout=120) as response:
            raw = response.read()
        self.polls += 1
        self.bytes_received += len(raw)
        if self.parse:
            self.diff(json.loads(raw))
        return len(raw)

    def count_failure(self, error: dict[str, Any]) -> None:
        error_type = classify(error.get("exception_type"), error.get("exception_message")).value
        self.failures[error_type] = self.failures.get(error_type, 0) + 1

    def run(self, stop: threading.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.poll_once()
            stop.wait(self.interval)
