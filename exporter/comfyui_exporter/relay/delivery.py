"""Per-target delivery: queue, merge, rate-limit, send with retries inside a deadline, settle.

One worker per target sends one robot message at a time. When it gets a rate-limit slot it takes
*everything* queued for the target: one notification becomes one message, several become one merged
message. So a burst costs at most the robot's allowance of messages and nothing is dropped.

Each notification has a deadline (``delivery.deadline_seconds``, shorter than Alertmanager's webhook
timeout). Retries (with exponential backoff) stop at the deadline. The HTTP answer is 200 only after the
robot said OK; 500 for a permanent robot error (explained in the log); 503 otherwise, so that
Alertmanager retries. A notification still queued at its deadline is taken out of the queue before the
503 is sent, so Alertmanager's retry cannot produce a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from .compose import compose_merged, compose_single
from .config import DeliveryConfig, TargetConfig
from .dedup import DeliveredIndex
from .failures import FailureDetail
from .journal import Journal
from .metrics import RelayMetrics
from .payload import Payload
from .ratelimit import RateLimiter, Slot
from .render import Renderer
from .robots import Outcome, Part, Robot, SendResult

log = logging.getLogger(__name__)
_MIN_ATTEMPT = 0.05  # do not start a request with less time than this before the deadline
PART_MEMORY = 900.0  # seconds a delivered part of an unfinished split message is not sent again


class State(enum.Enum):
    QUEUED = "queued"
    INFLIGHT = "inflight"
    DONE = "done"


@dataclass(frozen=True)
class Result:
    """What the HTTP handler answers Alertmanager, and what the journal records."""

    http_status: int  # 200 delivered, 500 permanent robot error, 503 not delivered yet
    status: str  # delivered | rejected_by_robot | undelivered
    reason: str = ""
    detail: str = ""
    ref: str = ""
    message_ids: tuple[str, ...] = ()
    merged_with: int = 0
    attempts: int = 0


@dataclass(eq=False)
class Pending:
    """One accepted notification waiting for its robot message (the HTTP request waits on ``future``)."""

    id: str
    payload: Payload
    received: float
    deadline: float
    failures: dict[str, FailureDetail] = field(default_factory=dict)
    dedup_key: str = ""
    state: State = State.QUEUED
    future: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def new_id() -> str:
    """Short random id for notifications and robot messages (shown as ``ref`` in messages and journal)."""
    return uuid.uuid4().hex[:12]


class TargetWorker:
    """Queue, rate limiter and sender of one target; one robot message in flight at a time."""

    def __init__(
        self,
        target: TargetConfig,
        robot: Robot,
        limiter: RateLimiter,
        renderer: Renderer,
        journal: Journal,
        metrics: RelayMetrics,
        session: Callable[[], aiohttp.ClientSession],
        delivery: DeliveryConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target, self.robot, self.limiter, self.renderer = target, robot, limiter, renderer
        self.journal, self.metrics, self._session, self.delivery = journal, metrics, session, delivery
        self._clock = clock
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._partial: dict[str, float] = {}  # parts already delivered of a split message that then failed
        self.delivered: DeliveredIndex | None = None  # set by the relay: idempotency (dedup.py)
        self._latency = 0.0  # moving average of a robot request's duration, seconds
        metrics.init_target(target.name)

    @property
    def name(self) -> str:
        return self.target.name

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"relay-worker-{self.name}")

    def reconfigure(
        self,
        target: TargetConfig,
        robot: Robot,
        limiter: RateLimiter,
        renderer: Renderer,
        delivery: DeliveryConfig,
    ) -> None:
        """Apply a reload; keep the rate-limit history so the robot's window stays honest."""
        if not limiter.same_rules(self.limiter):
            limiter.adopt_history(self.limiter)
            self.limiter = limiter
        self.target, self.robot, self.renderer, self.delivery = target, robot, renderer, delivery

    def submit(self, pending: Pending) -> None:
        self._queue.append(pending)
        self.metrics.notifications.labels(self.name).inc()
        self._update_depth()
        self._wake.set()

    def _update_depth(self) -> None:
        depth = sum(1 for p in self._queue if p.state is State.QUEUED)
        self.metrics.queue_depth.labels(self.name).set(depth)

    async def wait(self, pending: Pending) -> Result:
        """The HTTP answer for ``pending``: by its deadline if still queued, else when the send settles."""
        try:
            left = max(0.0, pending.deadline - self._clock())
            return await asyncio.wait_for(asyncio.shield(pending.future), timeout=left)
        except TimeoutError:
            if pending.state is State.QUEUED:
                self._dequeue(pending)
                self._settle(
                    [pending],
                    Result(
                        503,
                        "undelivered",
                        "queued_past_deadline",
                        "the target's rate limit held it until the deadline",
                    ),
                )
            return await pending.future
        except asyncio.CancelledError:
            if pending.state is State.QUEUED:
                self._dequeue(pending)
                self._settle([pending], Result(503, "undelivered", "shutdown", "request cancelled"))
            raise

    def _dequeue(self, pending: Pending) -> None:
        if pending in self._queue:
            self._queue.remove(pending)
        self._update_depth()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                slot = await self.limiter.acquire()
                assert slot is not None
                batch, rate_limited = self._take_batch(self.limiter.available())
                if not batch:
                    slot.cancel()
                    break
                try:
                    await self._deliver(batch, slot, rate_limited)
                except asyncio.CancelledError:
                    self._settle(
                        [p for p in batch if p.state is not State.DONE],
                        Result(503, "undelivered", "shutdown", "relay stopping"),
                    )
                    raise
                except Exception as exc:
                    log.exception("target %s: internal error while delivering", self.name)
                    self._settle(
                        [p for p in batch if p.state is not State.DONE],
                        Result(503, "undelivered", "internal", type(exc).__name__),
                    )

    def _take_batch(self, spare: int) -> tuple[list[Pending], bool]:
        """What the slot just acquired sends, and whether it is merged because of the rate limit.

        The oldest notification goes alone while the robot's allowance has ``spare`` tokens beyond
        this one; when it has none, everything queued is merged (rate-limited). Also merged, but not
        for the rate limit: the queue when sending it one by one at the robot's recent latency would
        answer a waiting notification after its deadline (a slow robot), so that none is answered 503
        only because the others went first. Items at their deadline stay for their handler to settle.
        """
        now = self._clock()
        ready = [p for p in self._queue if p.state is State.QUEUED and p.deadline - now > _MIN_ATTEMPT]
        # one by one, the j-th would be answered at about now + (j + 1) * latency: all in time?
        step = self._latency * 1.25
        late = step > 0 and any(
            p.deadline - _MIN_ATTEMPT < now + (j + 1) * step for j, p in enumerate(ready) if j
        )
        batch = ready[:1] if spare >= 1 and not late else ready
        self._queue = [p for p in self._queue if p.state is State.QUEUED and p not in batch]
        for p in batch:
            p.state = State.INFLIGHT
        self._update_depth()
        return batch, spare < 1

    async def _deliver(self, batch: list[Pending], slot: Slot | None, rate_limited: bool = True) -> None:
        ref = new_id()
        merged = len(batch) > 1
        # Rendering a group of hundreds of alerts takes a few hundred ms of CPU: keep the loop free.
        if merged:
            parts = await asyncio.to_thread(
                compose_merged,
                [p.payload for p in batch],
                self.target,
                self.robot,
                self.renderer,
                ref,
                [p.failures for p in batch],
                rate_limited,  # the message says "rate-limited" only when that is why (_take_batch)
            )
        else:
            parts = await asyncio.to_thread(
                compose_single,
                batch[0].payload,
                self.target,
                self.robot,
                self.renderer,
                ref,
                batch[0].failures,
                self.delivery.max_parts,
            )
        deadline = min(p.deadline for p in batch)
        self.journal.write(
            "sending",
            target=self.name,
            ref=ref,
            notifications=[p.id for p in batch],
            merged=merged,
            rate_limited=merged and rate_limited,
            parts=len(parts),
            bytes=[self.robot.prepare(part, 0).measured for part in parts],
        )
        sent: list[str] = []
        attempts = 0
        result = SendResult(Outcome.OK)
        keys = [self._part_key(part) for part in parts] if len(parts) > 1 else [""] * len(parts)
        for index, (part, key) in enumerate(zip(parts, keys, strict=True), 1):
            if key and key in self._partial:
                sent.append(f"{ref}/{index}")  # delivered by an earlier try of this same notification
                continue
            result, n = await self._send_with_retry(part, slot, deadline)
            slot, attempts = None, attempts + n
            if not result.ok:
                break
            sent.append(f"{ref}/{index}")
            self.metrics.messages.labels(self.name).inc()
            if key:
                self._partial[key] = self._clock() + PART_MEMORY
                # on disk too, so that the retry after a restart does not resend this part
                self.journal.write("part_delivered", target=self.name, ref=ref, part=index, part_key=key)
        if slot is not None:
            slot.cancel()
        if result.ok:
            for key in keys:
                self._partial.pop(key, None)
        status, http = (
            ("delivered", 200)
            if result.ok
            else ("rejected_by_robot", 500)
            if result.outcome is Outcome.PERMANENT
            else ("undelivered", 503)
        )
        outcome = Result(
            http,
            status,
            "" if result.ok else result.reason,
            "" if result.ok else result.detail,
            ref,
            tuple(sent),
            len(batch) if merged else 0,
            attempts,
        )
        self._settle(batch, outcome)

    def remember_parts(self, ages: dict[str, float]) -> None:
        """Parts delivered before a restart (``{part_key: seconds ago}``, from the journal)."""
        now = self._clock()
        for key, age in ages.items():
            if age < PART_MEMORY:
                self._partial[key] = now + PART_MEMORY - age

    def _part_key(self, part: Part) -> str:
        now = self._clock()
        self._partial = {k: v for k, v in self._partial.items() if v > now}
        return hashlib.sha256(
            f"{self.name}\0{part.title}\0{part.text}".encode("utf-8", "replace")
        ).hexdigest()

    async def _send_with_retry(
        self, part: Part, slot: Slot | None, deadline: float
    ) -> tuple[SendResult, int]:
        attempts, backoff = 0, self.delivery.backoff_initial_seconds
        last = SendResult(
            Outcome.TRANSIENT, "queued_past_deadline", "the target's rate limit held it until the deadline"
        )
        while True:
            if slot is None:
                slot = await self.limiter.acquire(deadline=deadline - _MIN_ATTEMPT)
                if slot is None:
                    return last, attempts
            left = deadline - self._clock()
            if left < _MIN_ATTEMPT:
                slot.cancel()
                return last, attempts
            started = self._clock()
            result = await self.robot.send(
                self._session(), part, min(self.delivery.attempt_timeout_seconds, left)
            )
            took = self._clock() - started
            self._latency = took if not self._latency else 0.7 * self._latency + 0.3 * took
            slot.done(counted=result.counted)
            slot, attempts = None, attempts + 1
            self.metrics.attempts.labels(self.name, result.outcome.value).inc()
            if result.outcome is not Outcome.TRANSIENT:
                return result, attempts
            last = result
            pause = backoff * random.uniform(0.8, 1.2)
            backoff = min(backoff * 2, self.delivery.backoff_max_seconds)
            if result.reason == "robot_rate_limited":
                pause = max(pause, self.delivery.backoff_max_seconds)
            log.warning(
                "target %s: attempt %d failed (%s: %s); retrying in %.2fs",
                self.name,
                attempts,
                result.reason,
                result.detail,
                pause,
            )
            if self._clock() + pause + _MIN_ATTEMPT >= deadline:
                return result, attempts
            await asyncio.sleep(pause)

    def _settle(self, batch: list[Pending], result: Result) -> None:
        batch = [p for p in batch if p.state is not State.DONE]
        if not batch:
            return
        now = self._clock()
        for p in batch:
            if p.state is State.DONE:
                continue
            p.state = State.DONE
            seconds = round(now - p.received, 3)
            fields = dict(
                target=self.name,
                id=p.id,
                http_status=result.http_status,
                reason=result.reason,
                detail=result.detail,
                ref=result.ref,
                messages=list(result.message_ids),
                merged_with=result.merged_with,
                attempts=result.attempts,
                seconds=seconds,
                alerts=[a.fingerprint or a.name for a in p.payload.alerts],
            )
            if result.http_status == 200 and p.dedup_key:
                fields["dedup_key"] = p.dedup_key  # the restart-proof memory of dedup.py
            if result.http_status == 200:
                self.journal.write("delivered", **fields)
                if p.dedup_key and self.delivered is not None:
                    self.delivered.add(p.dedup_key, result.ref, result.message_ids)
                self.metrics.delivery_seconds.labels(self.name).observe(now - p.received)
                if result.merged_with:
                    self.metrics.merged.labels(self.name).inc()
            else:
                self.journal.write("failed", **fields)
                self.metrics.failures.labels(self.name, result.reason or "internal").inc()
            if not p.future.done():
                p.future.set_result(result)
        self._update_depth()
        if result.http_status == 200:
            log.info(
                "target %s: delivered %d notification(s) in %s message(s) (ref %s)",
                self.name,
                len(batch),
                len(result.message_ids),
                result.ref,
            )
        elif result.http_status == 500:
            log.error(
                "target %s: the robot rejected the message permanently: %s [%s]. Answering 500 "
                "(Alertmanager will retry); fix the target config and reload.",
                self.name,
                result.detail,
                result.reason,
            )
        else:
            log.warning(
                "target %s: not delivered before the deadline (%s: %s); answering 503 so "
                "Alertmanager retries",
                self.name,
                result.reason,
                result.detail,
            )

    async def close(self) -> None:
        """Stop the worker; queued notifications get 503 (Alertmanager will retry elsewhere/later)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        queued = [p for p in self._queue if p.state is State.QUEUED]
        self._queue.clear()
        self._settle(queued, Result(503, "undelivered", "shutdown", "relay stopping"))
