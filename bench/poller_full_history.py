"""Baseline (a): the usual monitoring sidecar that polls the *whole* ``GET /history`` every 5 s.

This is what most ComfyUI monitors do: complete (every outcome is in history), simple, and
O(history bytes) per poll — ComfyUI serialises every entry, 50 KB frontend workflows included, on
its event loop each time. Kept deliberately small and faithful: one request per interval, new
ids are diffed against the ids seen before, failures counted by error class.
"""

from __future__ import annotations

from dataclasses import dataclass

from .poller_base import BaselinePoller


@dataclass
class FullHistoryPoller(BaselinePoller):
    def url(self) -> str:
        return self.base_url + "/history"

    def diff(self, history: dict) -> None:
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
                self.count_failure(final[1])
