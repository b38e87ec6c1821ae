"""Real-ComfyUI request costs, from the recorded timings of shared/comfyui-protocol.md §11.

Why a model: the simulator's server-side seconds are the *simulator's* (aiohttp + a dict of
entries), not ComfyUI's. ComfyUI was measured once on a 2-core box (loopback, tiny entries); these
figures turn the request counts and bytes each monitor caused into an estimate of ComfyUI event-loop
time. Costs between the recorded history sizes are interpolated linearly (the work is O(entries)).
Assumption: serialising workflow-heavy entries costs about as much per byte as the tiny recorded
ones (the work is the same deepcopy-free ``json.dumps``), so ``/history`` is charged per MB.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

# (history entries, value) points taken from §11.
# GET /history (full): 3.6 ms for 92 KB (100), 32 ms / 0.9 MB (1k), 68 ms / 2.8 MB (3k),
# 218–327 ms / 9.2 MB (10k)  ->  ms per MB of response.
HISTORY_MS_PER_MB: Sequence[tuple[int, float]] = ((100, 39.1), (1000, 35.6), (3000, 24.3), (10000, 29.6))
# GET /history?max_items=1: 0.5 ms (0 entries), 0.7 ms (1k), 1–3 ms (10k): the O(entries) walk to the
# offset, paid by every windowed history request regardless of its size.
HISTORY_BASE_MS: Sequence[tuple[int, float]] = ((0, 0.5), (1000, 0.7), (10000, 2.0))
# GET /api/jobs?limit=1 (limit=50 costs the same: every entry is normalised and sorted first):
# 1 ms (100), 10 ms (1k), 27 ms (3k), 81–105 ms (10k).
JOBS_ALL_MS: Sequence[tuple[int, float]] = ((100, 1.0), (1000, 10.0), (3000, 27.0), (10000, 93.0))
# GET /api/jobs?status=pending,in_progress does not touch history: charged like GET /queue (empty),
# 0.4–1 ms; GET /system_stats 1.4–3 ms.
JOBS_QUEUE_MS = 0.7
SYSTEM_STATS_MS = 2.2

SOURCE_ROWS = [
    (
        "GET /history (full)",
        "3.6 ms (100) → 32 ms (1k) → 68 ms (3k) → 218–327 ms (10k)",
        "92 KB → 0.9 MB → 2.8 MB → 9.2 MB",
        "charged per MB: 39 / 36 / 24 / 30 ms per MB",
    ),
    (
        "GET /history?max_items=1",
        "0.5 ms (0) → 0.7 ms (1k) → 1–3 ms (10k)",
        "~0.9 KB",
        "fixed part of every windowed /history request",
    ),
    (
        "GET /api/jobs?limit=1",
        "1 ms (100) → 10 ms (1k) → 27 ms (3k) → 81–105 ms (10k)",
        "0.3 KB",
        "charged per /api/jobs?limit=50 request (same O(history) work)",
    ),
    (
        "GET /prompt, /queue (empty)",
        "0.4–1 ms",
        "37–42 B",
        "charged 0.7 ms per /api/jobs?status=pending,in_progress",
    ),
    ("GET /system_stats", "1.4–3 ms", "607 B", "charged 2.2 ms"),
]


def interpolate(points: Sequence[tuple[int, float]], x: float) -> float:
    """Piecewise-linear through ``points`` (clamped at both ends)."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def history_request_ms(history_len: float, count: float, nbytes: float) -> float:
    """ComfyUI ms for ``count`` GET /history requests returning ``nbytes`` in total."""
    return count * interpolate(HISTORY_BASE_MS, history_len) + nbytes / 1e6 * interpolate(
        HISTORY_MS_PER_MB, history_len
    )


def estimate_ms(
    path: str, history_len: float, count: float, nbytes: float, jobs_touch_history: bool
) -> float:
    """Estimated real-ComfyUI milliseconds for one row of ``/_sim/stats`` deltas."""
    if path == "/history":
        return history_request_ms(history_len, count, nbytes)
    if path == "/api/jobs":
        per = interpolate(JOBS_ALL_MS, history_len) if jobs_touch_history else JOBS_QUEUE_MS
        return count * per
    if path == "/system_stats":
        return count * SYSTEM_STATS_MS
    if path in ("/queue", "/prompt"):
        return count * JOBS_QUEUE_MS
    return 0.0
