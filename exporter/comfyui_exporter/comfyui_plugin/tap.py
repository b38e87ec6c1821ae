"""The tap: process-wide state of the plugin and the safe-call discipline every hook goes through.

One ``Tap`` per ComfyUI process, even if the pack is installed twice (copy + link): the instance
is parked on ``PromptServer.instance`` and a second load reuses it instead of hooking twice or
registering the route twice (a duplicate aiohttp route would abort ComfyUI's startup).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

from .ring import DEFAULT_CAPACITY, EventRing

log = logging.getLogger("comfyui_exporter_plugin")

PLUGIN_VERSION = "1"
SERVER_ATTR = "_comfyui_exporter_tap"
MAX_RECENT_TRIPS = 50
_ERROR_LOG_INTERVAL_S = 60.0


class Tap:
    """Ring buffer + which hooks are live + error accounting, shared by hooks, routes and the node."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, token: str | None = None, progress_interval: float = 0.5
    ) -> None:
        self.ring = EventRing(capacity)
        self.token = token or None
        self.progress_interval = max(0.0, progress_interval)
        self.hooks: dict[str, str] = {}
        self.features: dict[str, bool] = {}
        self.errors = 0
        self.recent_trips: deque[dict[str, Any]] = deque(maxlen=MAX_RECENT_TRIPS)
        self.guard_checks = 0
        self.started_at = time.time()
        self._last_error_log = 0.0
        self._error_lock = threading.Lock()

    @classmethod
    def from_env(cls) -> Tap:
        """Settings come from the environment because ComfyUI has no per-pack configuration."""
        return cls(
            capacity=_env_int("COMFYUI_EXPORTER_PLUGIN_RING", DEFAULT_CAPACITY),
            token=os.environ.get("COMFYUI_EXPORTER_PLUGIN_TOKEN") or None,
            progress_interval=_env_float("COMFYUI_EXPORTER_PLUGIN_PROGRESS_INTERVAL", 0.5),
        )

    def emit(self, kind: str, fields: dict[str, Any]) -> None:
        """Appends an event; never raises (a broken tap must not break a prompt)."""
        try:
            self.ring.append(kind, fields)
        except Exception:
            self.failed(f"emit {kind}")

    def failed(self, where: str) -> None:
        """Counts a plugin error and logs it at most once a minute with its traceback."""
        with self._error_lock:
            self.errors += 1
            now = time.monotonic()
            noisy = now - self._last_error_log < _ERROR_LOG_INTERVAL_S
            if not noisy:
                self._last_error_log = now
        if not noisy:
            log.exception(
                "comfyui-exporter plugin: error in %s (ComfyUI continues; errors so far: %d)",
                where,
                self.errors,
            )

    def mark(self, hook: str, state: str) -> None:
        """Records a hook's state: 'active' or 'disabled: <why>'; disabled ones are logged once."""
        self.hooks[hook] = state
        if state != "active":
            log.warning("comfyui-exporter plugin: %s hook %s", hook, state)

    def record_trip(self, fields: dict[str, Any]) -> None:
        """A VRAM guard trip: a tap event plus an entry in the /status list of recent trips."""
        entry = dict(fields)
        entry.setdefault("ts", time.time())
        self.recent_trips.append(entry)
        self.emit("vram_guard_trip", fields)

    def status(self) -> dict[str, Any]:
        """What GET /comfyui-exporter/v1/status returns: enough to debug the tap remotely."""
        return {
            "plugin_version": PLUGIN_VERSION,
            "boot_id": self.ring.boot_id,
            "seq": self.ring.seq,
            "capacity": self.ring.capacity,
            "dropped": self.ring.dropped,
            "hooks": dict(self.hooks),
            "comfyui_features": dict(self.features),
            "errors": self.errors,
            "guard_checks": self.guard_checks,
            "recent_trips": list(self.recent_trips),
            "started_at": self.started_at,
        }


_current: Tap | None = None


def current() -> Tap | None:
    """The installed tap, or None (the guard node then only logs)."""
    return _current


def set_current(tap: Tap | None) -> None:
    global _current
    _current = tap


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        log.warning("comfyui-exporter plugin: ignoring %s=%r (not an integer)", name, os.environ.get(name))
        return default


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("comfyui-exporter plugin: ignoring %s=%r (not a number)", name, os.environ.get(name))
        return default
