"""Simulator-side bookkeeping that survives simulated restarts: outcomes, request stats, faults.

None of this exists in ComfyUI; it is the ground truth tests and benchmarks compare the exporter
against (what really failed, how much each endpoint cost the server, which faults are active).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FAILURE_TYPES = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")

_HISTORY_ITEM = re.compile(r"^/history/[^/]+$")
_JOB_ITEM = re.compile(r"^/api/jobs/[^/]+$")


def route_key(path: str) -> str:
    """Canonical PATH for stats and faults: no ``/api`` prefix, no query, ids templated.

    The jobs routes are declared as ``/api/jobs`` in ComfyUI (there is no ``/jobs``), so their key
    keeps that prefix: ``/api/jobs``, ``/api/jobs/{job_id}``.
    """
    p = path
    if p == "/api" or p.startswith("/api/"):
        p = p[4:] or "/"
    if p == "/jobs" or p.startswith("/jobs/"):
        p = "/api" + p
    if _HISTORY_ITEM.match(p):
        return "/history/{prompt_id}"
    if _JOB_ITEM.match(p):
        return "/api/jobs/{job_id}"
    return p


def _aliases(path: str) -> list[str]:
    """Keys a fault may be registered under for this request path (most specific first)."""
    key = route_key(path)
    literal = path[4:] if path.startswith("/api/") else path
    out = [literal, key]
    if key.startswith("/api/jobs"):
        out += [key[4:], literal if literal.startswith("/api/") else "/api" + literal]
    return out


@dataclass
class Outcomes:
    """What reached history since the simulator process started (not reset by /_sim/restart)."""

    finished: int = 0
    success: int = 0
    interrupted: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_TYPES, 0))

    def record(self, outcome: str) -> None:
        self.finished += 1
        if outcome == "success":
            self.success += 1
        elif outcome == "interrupted":
            self.interrupted += 1
        else:
            self.failures[outcome] = self.failures.get(outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "finished": self.finished,
            "success": self.success,
            "interrupted": self.interrupted,
            "failures": dict(self.failures),
        }


@dataclass
class PathStats:
    count: int = 0
    bytes: int = 0
    server_seconds: float = 0.0


class Stats:
    """Per-route request counters: how often, how many response bytes, how much server time."""

    def __init__(self) -> None:
        self.paths: dict[str, PathStats] = {}

    def record(self, key: str, nbytes: int, seconds: float) -> None:
        s = self.paths.setdefault(key, PathStats())
        s.count += 1
        s.bytes += nbytes
        s.server_seconds += seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            k: {"count": v.count, "bytes": v.bytes, "server_seconds": round(v.server_seconds, 6)}
            for k, v in sorted(self.paths.items())
        }

    def clear(self) -> None:
        self.paths.clear()


@dataclass
class Faults:
    """Active fault injections (see docs/development.md ``/_sim/faults``)."""

    delay_ms: dict[str, float] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, bool] = field(default_factory=dict)
    oversize_bytes: dict[str, int] = field(default_factory=dict)
    drop_websockets: bool = False

    def update(self, body: dict[str, Any]) -> None:
        """Merge a POST /_sim/faults body into the active set (keys are normalised like route_key)."""
        for name in ("delay_ms", "status", "malformed", "oversize_bytes"):
            for path, value in (body.get(name) or {}).items():
                getattr(self, name)[path] = value
        if "drop_websockets" in body:
            self.drop_websockets = bool(body["drop_websockets"])

    def lookup(self, name: str, path: str) -> Any:
        table = getattr(self, name)
        if not table:
            return None
        for alias in _aliases(path):
            if alias in table:
                return table[alias]
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "delay_ms": dict(self.delay_ms),
            "status": dict(self.status),
            "malformed": dict(self.malformed),
            "oversize_bytes": dict(self.oversize_bytes),
            "drop_websockets": self.drop_websockets,
        }
