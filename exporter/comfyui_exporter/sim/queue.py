"""Prompt queue, running set and history with ComfyUI 0.8.0's exact semantics.

Pending items live in a binary min-heap of tuples ``(number, prompt_id, graph, extra_data,
outputs, sensitive)`` so ``/queue`` lists them in heap order (not sorted) like the real server.
History is an insertion-ordered dict (completion order) capped at 10,000 with the eviction done
*before* the insert, which is why a full server reports 10,001 entries.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000

QueueItem = tuple  # (number, prompt_id, graph, extra_data, outputs_to_execute, sensitive)


class PromptQueue:
    """Pending heap + running dict + history; ``on_change`` fires where ComfyUI calls queue_updated()."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.pending: list[QueueItem] = []
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self.number = 0
        self.task_counter = 0
        self.flags: dict[str, Any] = {}
        self._on_change = on_change or (lambda: None)
        self._not_empty = asyncio.Event()
        self.history_strip_keys: tuple[str, ...] = ()  # extra_data keys dropped on the way to history

    # -- counters -------------------------------------------------------------------------------
    def next_number(self, front: bool) -> int:
        """Consume the server-wide counter (every POST /prompt without ``number`` does, even invalid ones)."""
        number = -self.number if front else self.number
        self.number += 1
        return number

    def remaining(self) -> int:
        """``queue_remaining`` = pending + running."""
        return len(self.pending) + len(self.running)

    # -- queue ------------------------------------------------------------------------------------
    def put(self, item: QueueItem) -> None:
        heapq.heappush(self.pending, item)
        self._not_empty.set()
        self._on_change()

    async def get(self) -> tuple[QueueItem, int]:
        """Wait for and pop the smallest item; it becomes ``running``."""
        while not self.pending:
            self._not_empty.clear()
            await self._not_empty.wait()
        item = heapq.heappop(self.pending)
        task_id = self.task_counter
        self.running[task_id] = copy.deepcopy(item)
        self.task_counter += 1
        self._on_change()
        return item, task_id

    def task_done(
        self, task_id: int, outputs: dict[str, Any], meta: dict[str, Any], status: dict[str, Any] | None
    ) -> None:
        """Move a finished item into history (evicting the oldest first when over the cap)."""
        item = self.running.pop(task_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        prompt = list(item[:5])
        if self.history_strip_keys:
            prompt[3] = {k: v for k, v in prompt[3].items() if k not in self.history_strip_keys}
        self.history[item[1]] = {"prompt": prompt, "outputs": outputs, "status": status, "meta": meta}
        self._on_change()

    def drop_running(self, task_id: int) -> None:
        """Forget a running item without a history entry (used when the 'process' dies)."""
        self.running.pop(task_id, None)

    @staticmethod
    def _public(item: QueueItem) -> list[Any]:
        return list(item[:5])

    def current_queue(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """``(running, pending)`` with the sensitive 6th element stripped; pending in heap order."""
        return [self._public(i) for i in self.running.values()], [self._public(i) for i in self.pending]

    def running_ids(self) -> list[str]:
        return [item[1] for item in self.running.values()]

    def wipe_queue(self) -> None:
        self.pending = []
        self._on_change()

    def delete_queue_item(self, match: Callable[[QueueItem], bool]) -> bool:
        for i, item in enumerate(self.pending):
            if match(item):
                self.pending.pop(i)
                heapq.heapify(self.pending)
                self._on_change()
                return True
        return False

    # -- history ----------------------------------------------------------------------------------
    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """ComfyUI's ``get_history``: newest ``max_items`` by default, ``offset`` counted from the oldest."""
        if prompt_id is not None:
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for i, key in enumerate(self.history):
            if i >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return out  # no copy here, like ComfyUI: responses are serialized immediately

    def wipe_history(self) -> None:
        self.history = {}

    def delete_history_item(self, prompt_id: str) -> None:
        self.history.pop(prompt_id, None)

    def set_flag(self, name: str, value: Any) -> None:
        self.flags[name] = value
