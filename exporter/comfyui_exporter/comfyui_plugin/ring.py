"""Bounded, thread-safe event ring with sequence numbers and a per-process boot id.

Events are appended from ComfyUI's prompt-worker thread (queue hooks, progress handlers, the
guard node) and from its event loop (validation, queue.put). Readers are aiohttp handlers that
long-poll. Why it is built this way:

- The lock only guards deque operations and counters and is never held while calling out, so an
  append cannot block or re-enter anything in ComfyUI (a re-entrant-lock freeze is exactly how
  another in-process exporter hangs ComfyUI).
- Waking a long-poll is scheduled with ``loop.call_soon_threadsafe`` and only when a reader is
  actually waiting, so a burst of progress events costs the event loop nothing while no exporter
  is parked on the route.
- A new ``boot_id`` per process lets the exporter tell "ComfyUI restarted, sequence restarted"
  from "I missed events because the ring overflowed".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import uuid
from collections import deque
from typing import Any

DEFAULT_CAPACITY = 4096


class EventRing:
    """Keeps the newest ``capacity`` events; each gets ``seq`` (1, 2, 3, ...) and ``ts`` (epoch s)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, boot_id: str | None = None) -> None:
        self.capacity = max(1, int(capacity))
        self.boot_id = boot_id or uuid.uuid4().hex
        self._events: deque[dict[str, Any]] = deque(maxlen=self.capacity)
        self._seq = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.dropped = 0

    @property
    def seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        return self._seq

    def append(self, kind: str, fields: dict[str, Any]) -> int:
        """Stores one event and wakes parked readers; returns its sequence number.

        ``fields`` is taken over (not copied) and must not be mutated afterwards.
        """
        fields["kind"] = kind
        fields.setdefault("ts", time.time())
        with self._lock:
            self._seq += 1
            fields["seq"] = self._seq
            if len(self._events) == self.capacity:
                self.dropped += 1
            self._events.append(fields)
            waiters, self._waiters = self._waiters, []
            seq = self._seq
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
                loop.call_soon_threadsafe(_resolve, fut)
        return seq

    def snapshot(self, after: int, limit: int) -> tuple[int, int, list[dict[str, Any]]]:
        """Returns (newest seq, oldest seq still held, events with seq > after, at most limit)."""
        with self._lock:
            newest = self._seq
            oldest = self._events[0]["seq"] if self._events else newest + 1
            if after >= newest or limit <= 0:
                return newest, oldest, []
            start = max(0, after + 1 - oldest)
            return newest, oldest, list(itertools.islice(self._events, start, start + limit))

    async def wait_after(self, after: int, timeout: float) -> None:
        """Returns when an event with seq > after exists, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._seq > after:
                return
            self._waiters.append((loop, fut))
        try:
            # asyncio.wait, not wait_for: no TimeoutError to catch (its class differs on Python 3.10,
            # which ComfyUI still supports).
            await asyncio.wait({fut}, timeout=timeout)
        finally:
            with self._lock:
                self._waiters = [w for w in self._waiters if w[1] is not fut]

    def waiting(self) -> int:
        """Number of parked long-polls (for the status route and tests)."""
        with self._lock:
            return len(self._waiters)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
