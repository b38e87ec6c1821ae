"""Per-target send limiter: a token bucket for pacing plus exact sliding windows for the robots' rules.

Why both:
* DingTalk and WeCom allow 20 messages in any 60 s (DingTalk then bans the robot for 10 minutes). A
  classic bucket holding 20 tokens and refilling 20/min can send 40 in the first minute, so the bucket
  here holds only ``burst`` tokens and refills ``(per_minute - burst)`` per minute: at most ``per_minute``
  sends start in any window, and a token is never more than ``60 / (per_minute - burst)`` seconds away,
  which keeps waiting notifications inside the delivery deadline (they are merged meanwhile).
* The sliding windows (``per_minute`` per 60 s, ``per_second`` per 1 s for Feishu) count a send from its
  *completion* time, which is never earlier than when the robot received it, and count in-flight sends
  as present: the robot can never see more than the limit in any of its windows, whatever the latency.

``clock`` is injectable and ``scale`` multiplies every window, so tests can fake or compress time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import RateLimit

_INFLIGHT = math.inf


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float


class Slot:
    """Permission to send one robot message; call :meth:`done` after the request, or :meth:`cancel`."""

    def __init__(self, limiter: RateLimiter, entries: list[list[float]]) -> None:
        self._limiter, self._entries, self._open = limiter, entries, True

    def done(self, counted: bool = True) -> None:
        """Record completion; ``counted=False`` (connection refused: the robot never saw it) refunds it."""
        if self._open:
            self._open = False
            self._limiter._finish(self._entries, counted)

    def cancel(self) -> None:
        """Give the slot back unused (nothing was sent)."""
        if self._open:
            self._open = False
            self._limiter._finish(self._entries, False, refund_token=True)


class RateLimiter:
    """Token bucket + sliding windows; ``delay()``/``try_acquire()`` are pure given the clock."""

    def __init__(
        self, windows: list[Window], burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not windows:
            raise ValueError("at least one window")
        self.windows = windows
        self._clock = clock
        self._logs: list[list[list[float]]] = [[] for _ in windows]  # per window: [start, end] entries
        main = max(windows, key=lambda w: w.seconds)
        self.burst = max(1, min(burst, main.limit))
        spare = main.limit - self.burst
        self.rate = (spare if spare > 0 else main.limit) / main.seconds  # tokens per second
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._changed: asyncio.Event | None = None

    @classmethod
    def for_target(
        cls, rate: RateLimit, scale: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """The limiter for a target's ``rate_limit``; ``scale`` shrinks the windows (tests)."""
        windows = [Window(rate.per_minute, 60.0 * scale)]
        if rate.per_second is not None:
            windows.append(Window(rate.per_second, 1.0 * scale))
        return cls(windows, rate.burst, clock)

    def same_rules(self, other: RateLimiter) -> bool:
        return self.windows == other.windows and self.burst == other.burst

    def adopt_history(self, old: RateLimiter) -> None:
        """After a reload, inherit what the old limiter already sent so the robot's window stays honest."""
        for mine, window in zip(self._logs, self.windows, strict=True):
            for theirs, old_window in zip(old._logs, old.windows, strict=True):
                if old_window.seconds == window.seconds:
                    mine.extend(theirs)
        self._tokens = min(self._tokens, old._tokens)

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = now

    def _prune(self, now: float) -> None:
        for log, window in zip(self._logs, self.windows, strict=True):
            log[:] = [e for e in log if e[1] > now - window.seconds]

    def delay(self) -> float:
        """Seconds until a send may start; ``math.inf`` if only an in-flight send's end can free a slot."""
        now = self._clock()
        self._refill(now)
        self._prune(now)
        wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
        for log, window in zip(self._logs, self.windows, strict=True):
            excess = len(log) - window.limit + 1
            if excess > 0:
                ends = sorted(e[1] for e in log)
                wait = max(wait, ends[excess - 1] + window.seconds - now)
        return max(0.0, wait)

    def available(self) -> int:
        """How many sends could start right now (tokens and every window allowing), without taking any."""
        now = self._clock()
        self._refill(now)
        self._prune(now)
        n = int(self._tokens + 1e-9)
        for log, window in zip(self._logs, self.windows, strict=True):
            n = min(n, window.limit - len(log))
        return max(0, n)

    def try_acquire(self) -> Slot | None:
        """Take a slot now if the bucket and every window allow it."""
        if self.delay() > 0.0:
            return None
        self._tokens -= 1.0
        now = self._clock()
        entries = []
        for log in self._logs:
            entry = [now, _INFLIGHT]
            log.append(entry)
            entries.append(entry)
        return Slot(self, entries)

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def acquire(self, deadline: float | None = None) -> Slot | None:
        """Wait for a slot; ``None`` if ``deadline`` (on this limiter's clock) comes first."""
        while True:
            slot = self.try_acquire()
            if slot is not None:
                return slot
            wait = self.delay()
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0 or (not math.isinf(wait) and wait > left):
                    return None
                wait = min(wait, left)  # an in-flight send may free a slot before the deadline
            event = self._event()
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=None if math.isinf(wait) else max(wait, 0.001))

    def _finish(self, entries: list[list[float]], counted: bool, refund_token: bool = False) -> None:
        now = self._clock()
        for log, entry in zip(self._logs, entries, strict=True):
            if counted:
                entry[1] = now
            elif entry in log:
                log.remove(entry)
        if refund_token or not counted:
            self._refill(now)
            self._tokens = min(float(self.burst), self._tokens + 1.0)
        if self._changed is not None:
            self._changed.set()
