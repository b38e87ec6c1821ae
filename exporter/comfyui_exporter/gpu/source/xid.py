"""Background thread that turns NVML XID critical-error events into counters and timestamps.

Why a thread: XID events are delivered by nvmlEventSetWait, a blocking call; polling it from the
scrape would either block the scrape or miss events between scrapes. The thread waits with a short
timeout (so close() returns promptly) and records each event in an :class:`XidStore` the collector
reads. Why a timestamp as well as a counter: the counter child for an XID first appears at 1, which
``increase()`` never sees as an increase; ``comfyui_gpu_last_xid_timestamp_seconds`` makes the very
first event alertable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import ErrorCounts
from .nvml import NvmlLike, XidEvent, error_reason

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
_LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class XidSeries:
    """One (gpu, uuid, xid) with its count and the wall-clock time of the last event."""

    gpu: str
    uuid: str
    xid: str
    count: int
    last_seconds: float


class XidStore:
    """(gpu, uuid, xid) -> count and last timestamp; written by the thread, read by collect()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._last_log: dict[tuple[str, str, str], float] = {}

    def record(self, gpu: str, uuid: str, xid: int, now: float) -> bool:
        """Count one event; True when it should be logged at WARNING (first in a while for this key)."""
        key = (gpu, uuid, str(xid))
        with self._lock:
            count, _ = self._series.get(key, (0, 0.0))
            self._series[key] = (count + 1, now)
            loud = now - self._last_log.get(key, float("-inf")) >= _LOG_EVERY_S
            if loud:
                self._last_log[key] = now
            return loud

    def snapshot(self) -> list[XidSeries]:
        with self._lock:
            items = sorted(self._series.items(), key=lambda kv: (kv[0][0], kv[0][1], int(kv[0][2])))
            return [XidSeries(g, u, x, c, t) for (g, u, x), (c, t) in items]


class XidWatcher:
    """Registers GPUs for XID events and records them; run() is the thread body, poll_once() one step."""

    def __init__(
        self,
        nvml: NvmlLike,
        store: XidStore,
        errors: ErrorCounts,
        *,
        uuid_for_index: Callable[[int], str | None] = lambda _index: None,
        wall: Callable[[], float] = time.time,
        poll_ms: int = 500,
    ) -> None:
        self._nvml = nvml
        self._store = store
        self._errors = errors
        self._uuid_for_index = uuid_for_index
        self._wall = wall
        self._poll_ms = poll_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        self._logged_reasons: set[str] = set()
        self.registered: list[int] = []

    def register(self, indices: Iterable[int]) -> list[int]:
        """Register each GPU; a GPU that can't deliver events (NOT_SUPPORTED, lost) is counted and skipped."""
        for index in indices:
            try:
                self._nvml.xid_register(index)
            except Exception as exc:
                reason = error_reason(exc)
                self._errors.inc(reason)
                log.info("GPU %s: XID events unavailable (%s: %s)", index, reason, exc)
                continue
            self.registered.append(index)
        return self.registered

    def record(self, event: XidEvent) -> None:
        gpu = "" if event.index is None else str(event.index)
        uuid = event.uuid or (self._uuid_for_index(event.index) if event.index is not None else None) or ""
        if self._store.record(gpu, uuid, event.xid, self._wall()):
            log.warning("NVML XID %s on GPU %s (%s)", event.xid, gpu or "?", uuid or "uuid unknown")

    def poll_once(self) -> bool:
        """Wait up to poll_ms for one event; True when one was recorded. NVML errors propagate."""
        event = self._nvml.xid_wait(self._poll_ms)
        if event is None:
            return False
        self.record(event)
        return True

    def step(self) -> float:
        """One loop iteration that never raises: the seconds to back off before the next (0 after success)."""
        try:
            self.poll_once()
        except Exception as exc:
            reason = error_reason(exc)
            self._errors.inc(reason)
            if reason not in self._logged_reasons:
                self._logged_reasons.add(reason)
                log.warning("waiting for NVML XID events failed (%s: %s); retrying with backoff", reason, exc)
            self._backoff = min(max(self._backoff * 2, 1.0), _MAX_BACKOFF_S)
            return self._backoff
        self._backoff = 0.0
        return 0.0

    def run(self) -> None:
        while not self._stop.is_set():
            backoff = self.step()
            if backoff:
                self._stop.wait(backoff)

    def start(self) -> None:
        if self._thread is None and self.registered:
            self._thread = threading.Thread(target=self.run, name="comfyui-exporter-nvml-xid", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (returns within about poll_ms), then free the NVML event set."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Still inside nvmlEventSetWait: freeing the set under it would be a use-after-free.
                log.warning("NVML XID thread did not stop within %.1f s; leaving its event set", timeout)
                return
            self._thread = None
        try:
            self._nvml.xid_close()
        except Exception as exc:
            log.debug("freeing the NVML event set failed: %s", exc)
