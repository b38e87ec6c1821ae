"""Rate limiter on a fake clock: a full minute of pressure in microseconds of test time."""

from __future__ import annotations

import asyncio
import itertools

from comfyui_exporter.relay.config import RateLimit
from comfyui_exporter.relay.ratelimit import RateLimiter, Window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def max_in_window(times: list[float], seconds: float) -> int:
    return max((sum(1 for u in times if t <= u < t + seconds) for t in times), default=0)


def drive(
    limiter: RateLimiter, clock: FakeClock, duration: float, step: float, latency: float = 0.0
) -> list[float]:
    """Try to send every ``step`` seconds for ``duration``; return completion times of granted sends."""
    done: list[float] = []
    end = clock.now + duration
    while clock.now < end:
        slot = limiter.try_acquire()
        if slot is not None:
            clock.now += latency
            slot.done()
            done.append(clock.now)
        clock.now += step
    return done


def test_dingtalk_rule_never_more_than_20_in_any_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter.for_target(RateLimit(20, None, 5), clock=clock)
    sends = drive(limiter, clock, duration=600, step=0.01, latency=0.2)
    assert max_in_window(sends, 60.0) <= 20
    assert len(sends) >= 95  # ~20/min sustained over 10 minutes (first window: 5 burst + 15)
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert max(gaps) <= 4.3  # a token is never far away: merged messages stay inside the deadline


def test_burst_then_paced() -> None:
    clock = FakeClock()
    limiter = RateLimiter.for_target(RateLimit(20, None, 5), clock=clock)
    granted = [limiter.try_acquire() for _ in range(10)]
    assert sum(s is not None for s in granted) == 5
    for s in granted:
        if s is not None:
            s.done()
    assert 3.9 <= limiter.delay() <= 4.0  # (20 - 5) tokens per 60 s
    clock.now += 4.0
    assert limiter.try_acquire() is not None and limiter.try_acquire() is None


def test_plain_bucket_would_have_broken_the_robot_rule() -> None:
    """The reason for the small bucket: a 20-token bucket refilling 20/min allows ~40 in the first minute."""
    clock = FakeClock()
    naive = RateLimiter([Window(10_000, 60.0)], burst=10_000, clock=clock)
    naive._tokens, naive.burst, naive.rate = 20.0, 20, 20 / 60.0
    sends = drive(naive, clock, duration=60, step=0.01)
    assert len(sends) > 30
    clock2 = FakeClock()
    ours = RateLimiter.for_target(RateLimit(20, None, 5), clock=clock2)
    assert len(drive(ours, clock2, duration=60, step=0.01)) <= 20


def test_feishu_five_per_second_and_hundred_per_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter.for_target(RateLimit(100, 5, 5), clock=clock)
    sends = drive(limiter, clock, duration=180, step=0.005, latency=0.01)
    assert max_in_window(sends, 1.0) <= 5 and max_in_window(sends, 60.0) <= 100
    assert len(sends) >= 280


def test_in_flight_sends_count_until_they_complete() -> None:
    clock = FakeClock()
    limiter = RateLimiter([Window(2, 10.0)], burst=2, clock=clock)
    a, b = limiter.try_acquire(), limiter.try_acquire()
    assert a is not None and b is not None
    clock.now += 100.0  # both still in flight: the robot may not have seen them yet
    assert limiter.try_acquire() is None and limiter.delay() == float("inf")
    a.done()
    assert limiter.delay() == 10.0  # counted from completion, not from start
    clock.now += 10.0
    assert limiter.try_acquire() is not None


def test_refused_connection_is_refunded() -> None:
    clock = FakeClock()
    limiter = RateLimiter([Window(1, 60.0)], burst=1, clock=clock)
    slot = limiter.try_acquire()
    assert slot is not None
    slot.done(counted=False)  # connection refused: the robot never saw it
    assert limiter.try_acquire() is not None


def test_scale_compresses_windows() -> None:
    limiter = RateLimiter.for_target(RateLimit(20, None, 5), scale=0.05)
    assert limiter.windows == [Window(20, 3.0)] and abs(limiter.rate - 5.0) < 1e-9


def test_async_acquire_honours_deadline() -> None:
    async def scenario() -> None:
        limiter = RateLimiter([Window(1, 0.3)], burst=1)
        first = await limiter.acquire()
        assert first is not None
        first.done()
        loop = asyncio.get_running_loop()
        assert await limiter.acquire(deadline=loop.time() + 0.05) is None  # slot frees only after 0.3 s
        t0 = loop.time()
        second = await limiter.acquire(deadline=loop.time() + 1.0)
        assert second is not None and 0.2 <= loop.time() - t0 <= 0.6

    asyncio.run(scenario())
