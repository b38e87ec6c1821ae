"""Shared pieces of the benchmark sections: result types, statistics, machine facts, small helpers.

Why a result *model* instead of printing: every section is run several times and by two profiles
(full and ``--smoke``); the report, the JSON dump and the CI smoke test all read the same objects,
so a number is computed once and shown the same way everywhere.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPORTER_SRC = REPO / "exporter"


def ensure_paths() -> None:
    """Make ``comfyui_exporter`` (exporter/) and ``tests.support`` (repo root) importable.

    ``python -m bench`` must work from a plain checkout without ``pip install -e``, like the tests do
    with ``PYTHONPATH=exporter``; subprocesses get the same path through :func:`child_env`.
    """
    for path in (str(EXPORTER_SRC), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses (simulator, exporter, relay) that finds the source tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(EXPORTER_SRC), str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.update(extra or {})
    return env


# ------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Summary:
    """Median and spread (min..max) of repeated measurements: one number alone hides the noise."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        vals = [float(v) for v in values]
        if not vals:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(vals), min(vals), max(vals), len(vals))

    def fmt(self, unit: Callable[[float], str] = lambda v: f"{v:.3g}") -> str:
        if self.n == 0:
            return "n/a"
        if self.n == 1 or self.low == self.high:
            return f"{unit(self.median)} (n={self.n})"
        return f"{unit(self.median)} ({unit(self.low)}–{unit(self.high)}, n={self.n})"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); for latency tails with few samples."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt_bytes(n: float) -> str:
    if n != n:  # NaN
        return "n/a"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_ms(seconds: float) -> str:
    if seconds != seconds:
        return "n/a"
    ms = seconds * 1000
    return f"{ms:.3g} ms" if ms < 1000 else f"{seconds:.3g} s"


def finite(x: float) -> bool:
    return x == x and x not in (float("inf"), float("-inf"))


def fmt_ratio(r: float) -> str:
    if not finite(r):
        return "n/a"
    return f"{r:,.0f}×" if r >= 100 else f"{r:.3g}×"


# ------------------------------------------------------------------------------------ result model


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Target:
    """A requirement from the issue, checked against a measured number."""

    name: str
    target: str
    measured: str
    met: bool
    note: str = ""


@dataclass
class SectionResult:
    key: str
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headlines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)  # flat, for the smoke test and JSON
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------ machine facts


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version_of(binary: str, *args: str) -> str:
    try:
        out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "absent"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def machine_description() -> dict[str, str]:
    """What the numbers were measured on: the report is meaningless without it."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    versions = {}
    for dist in ("prometheus_client", "aiohttp", "websockets", "requests"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    except OSError:
        commit = "?"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu.group(1).strip() if cpu else platform.processor() or "?",
        "cores": f"{os.cpu_count()} logical, {affinity} usable",
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "prometheus": _version_of("prometheus", "--version"),
        "alertmanager": _version_of("prometheus-alertmanager", "--version"),
        "commit": commit or "?",
        "load average at start": " ".join(_read("/proc/loadavg").split()[:3]) or "?",
    }


# ------------------------------------------------------------------------------------ processes


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size from /proc (no psutil dependency); 0 when the process is gone."""
    text = _read(f"/proc/{pid or 'self'}/status")
    match = re.search(r"^VmRSS:\s*(\d+) kB", text, re.M)
    return int(match.group(1)) * 1024 if match else 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    if len(fields) < 13:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def http_json(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        raw = err.read()
    return json.loads(raw) if raw.strip() else None


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "") -> Any:
    """Poll until ``predicate`` is truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a server that is not up yet
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}: {last!r}")
        time.sleep(interval)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """All samples of one metric name from exposition text (a regex: scraping fast must be cheap)."""
    out = []
    for match in _SAMPLE.finditer(text):
        if match.group(1) != name:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        out.append((labels, float(match.group(3))))
    return out


def metric_sum(text: str, name: str, **labels: str) -> float:
    return sum(v for lab, v in metric_values(text, name) if all(lab.get(k) == x for k, x in labels.items()))
