"""Baseline (b): a poller of ``GET /api/jobs?limit=50`` every 5 s (ComfyUI ≥ 0.6.0).

Compact responses (job summaries, no workflows), so it looks cheap on the wire — but ComfyUI
normalises and sorts *every* history entry for each call (comfyui-protocol.md §8), so its server time
grows with history size even with a small ``limit``. Sorted by create_time, so a burst of more than
``limit`` completions between two polls is partly missed; interrupted prompts are ``failed`` without
``execution_error`` in 0.8.0.
"""

from __future__ import annotations

from dataclasses import dataclass

from .poller_base import BaselinePoller


@dataclass
class JobsPoller(BaselinePoller):
    limit: int = 50

    def url(self) -> str:
        return f"{self.base_url}/api/jobs?limit={self.limit}"

    def diff(self, body: dict) -> None:
        first = self.polls == 1
        for job in body.get("jobs", []):
            if job.get("status") not in ("completed", "failed", "cancelled") or job["id"] in self.seen:
                continue
            self.seen.add(job["id"])
            if first:
                continue
            self.finished += 1
            error = job.get("execution_error")
            if job.get("status") == "failed" and isinstance(error, dict):
                self.count_failure(error)
