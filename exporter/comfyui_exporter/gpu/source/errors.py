"""Thread-safe error counts behind ``comfyui_exporter_nvml_errors_total{reason}``.

Shared by the scrape path and the XID thread. The common reasons exist at 0 from the start: a counter
child that first appears with value 1 never makes ``increase()`` fire (see
shared/notes/prometheus-alertmanager-here.md, "lazily created counter children never alert").
"""

from __future__ import annotations

import threading

# NVML error names (see nvml.ERROR_NAMES) plus "other" (unknown NVML code) and "exception" (a bug).
PRECREATED_REASONS: tuple[str, ...] = (
    "library_not_found",
    "driver_not_loaded",
    "lib_rm_version_mismatch",
    "uninitialized",
    "no_permission",
    "not_supported",
    "gpu_is_lost",
    "timeout",
    "unknown",
    "exception",
)


class ErrorCounts:
    """reason -> count, monotonic, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(PRECREATED_REASONS, 0)

    def inc(self, reason: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))
