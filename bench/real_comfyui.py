"""What monitoring costs a *real* ComfyUI: ``python -m bench --comfyui-url URL --comfyui-pid PID``.

Section 1 measures against the simulator and translates request counts into ComfyUI time with the
recorded costs of comfyui-protocol.md §11. This measures the real thing instead: the CPU seconds the
ComfyUI process itself spends (utime + stime of ``/proc/PID/stat``, all its threads) and the bytes
it sends to the monitor (counted by a loopback relay, bench/byteproxy.py: ``/proc/PID/io`` does not
count socket sends), per minute, while one monitor runs:

* ``none``: nothing polls (the baseline every other row is netted against);
* ``ours``: the exporter with its defaults (``--plugin off``), and ``ours + plugin`` (``--plugin
  auto``) when the plugin answers in that ComfyUI;
* ``full /history @5 s`` and ``/api/jobs?limit=50 @5 s`` (the naive pollers of bench/, the second
  only where ComfyUI has /api/jobs: 0.6.0+).

Why this shape: the ComfyUI process's own CPU counters do not care what else runs on a shared
2-core machine (contention stretches wall time, not the seconds charged to the process), so the
monitors can take turns against one ComfyUI in one run; each window gets the same seeded sequence of
load prompts (so ComfyUI's own work and log lines are the same), the order rotates per repetition,
and the history is kept at its size by deleting the load's own prompts after each window (never
anyone else's entries). It needs the test node (tests/live/nodes/), which runs prompts without model
files: the load is the mix of section 1 (10 % frontend prompts with a 50 KB UI workflow, 10 %
failures with tracebacks, half the API prompts without client_id).
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .byteproxy import ByteProxy
from .common import SectionResult, Summary, Table, ensure_paths, finite, fmt_bytes, fmt_ratio, http_get
from .poller_full_history import FullHistoryPoller
from .poller_jobs import JobsPoller

ensure_paths()

from comfyui_exporter.sim.prompts import workflow_document  # noqa: E402
from tests.support.real_comfyui import RealComfyUI  # noqa: E402
from tests.support.stack import ExporterProcess  # noqa: E402

FAIL_MODES = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Profile:
    history: int = 1000
    rates: tuple[float, ...] = (0.0, 1.0)
    window_s: float = 30.0
    reps: int = 2
    warmup_s: float = 5.0
    settle_s: float = 11.0


SMOKE = Profile(history=20, rates=(0.0,), window_s=3.0, reps=1, warmup_s=2.0, settle_s=1.0)


def proc_cpu(pid: int) -> float:
    """CPU seconds the process has used so far (utime + stime, all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5)


class Load:
    """Submits the mix at a Poisson rate; the sequence of prompts is fixed by a seed."""

    def __init__(self, comfy: RealComfyUI) -> None:
        self.comfy = comfy
        self.doc = workflow_document(50.0, random.Random(1))
        self.submitted: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def one(self, rng: random.Random) -> str:
        r = rng.random()
        mode = FAIL_MODES[rng.randrange(len(FAIL_MODES))] if r < 0.10 else "success"
        frontend = rng.random() < 0.10
        client_id = "frontend-tab" if frontend else ("api-client" if rng.random() < 0.5 else None)
        workflow = {**self.doc, "id": f"{rng.getrandbits(64):016x}"} if frontend else None
        tag = f"bench-{rng.getrandbits(32):x}"
        pid = self.comfy.submit(mode, client_id=client_id, tag=tag, workflow=workflow)
        self.submitted.append(pid)
        return pid

    def start(self, rate: float, seed: int) -> None:
        self._stop.clear()
        if rate <= 0:
            return
        rng, gaps = random.Random(seed), random.Random(seed + 1)

        def loop() -> None:
            while not self._stop.wait(gaps.expovariate(rate)):
                self.one(rng)

        self._thread = threading.Thread(target=loop, name="real-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None


class Monitor:
    """One monitor that can be started and stopped around a window."""

    def __init__(self, name: str, comfy: RealComfyUI) -> None:
        self.name, self.comfy = name, comfy
        self.exporter: ExporterProcess | None = None
        self.proxy: ByteProxy | None = None
        self.poller: FullHistoryPoller | JobsPoller | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.name == "none":
            return
        parsed = urllib.parse.urlsplit(self.comfy.url)
        self.proxy = ByteProxy(parsed.hostname or "127.0.0.1", parsed.port or 80)
        url = self.proxy.url
        if self.name in ("ours", "ours + plugin"):
            plugin = "auto" if self.name == "ours + plugin" else "off"
            self.exporter = ExporterProcess(
                ["--no-gpu", "--comfyui-url", f"real={url}", "--plugin", plugin]
            ).start()
        else:
            cls = FullHistoryPoller if self.name.startswith("full") else JobsPoller
            self.poller = cls(url, parse=False)
            self._stop.clear()
            self._thread = threading.Thread(target=self.poller.run, args=(self._stop,), daemon=True)
            self._thread.start()

    def client_bytes(self) -> int | None:
        """Bytes ComfyUI has sent to this monitor so far (HTTP and websocket, headers included)."""
        return self.proxy.snapshot() if self.proxy is not None else None

    def stop(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(180)
            self._thread = None
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None


def fill(comfy: RealComfyUI, load: Load, target: int, log: Callable[[str], None]) -> int:
    existing = len(comfy.get("/history?max_items=100000"))
    need = max(0, target - existing)
    log(f"  [real] history holds {existing}; adding {need} prompts of the mix")
    rng = random.Random(7)
    for i in range(need):
        load.one(rng)
        if i % 50 == 49:
            comfy.wait_idle(300)
    comfy.wait_idle(300)
    load.submitted.clear()  # the fill stays; only window prompts are trimmed
    return len(comfy.get("/history?max_items=100000"))


def trim(comfy: RealComfyUI, load: Load) -> None:
    """Deletes the prompts the load added in the last window, so every window sees the same history."""
    comfy.wait_idle(300)
    if load.submitted:
        comfy.request("POST", "/history", {"delete": list(load.submitted)})
        load.submitted.clear()


def run_real(url: str, pid: int, smoke: bool = False, log: Callable[[str], None] = print,
             profile: Profile | None = None) -> SectionResult:
    prof = profile or (SMOKE if smoke else Profile())
    comfy = RealComfyUI(url, timeout=120)
    if not comfy.has_test_node():
        raise RuntimeError(f"{url} has no test node: copy tests/live/nodes/comfyui_exporter_testnode into "
                           "its custom_nodes/ and restart it")
    proc_cpu(pid)  # fails early on a wrong PID
    version = comfy.version()
    monitors = ["none", "ours"]
    if comfy.request("GET", "/comfyui-exporter/v1/status")[0] == 200:
        monitors.append("ours + plugin")
    monitors.append("full /history @5 s")
    if comfy.has_jobs_api():
        monitors.append("/api/jobs?limit=50 @5 s")
    result = SectionResult("real_comfyui", f"Cost to a real ComfyUI {version}")
    load = Load(comfy)
    size = fill(comfy, load, prof.history, log)
    full_bytes = len(http_get(comfy.url + "/history", timeout=300))
    rows: dict[tuple[float, str], list[tuple[float, float]]] = {}
    for rep in range(prof.reps):
        order = monitors if rep % 2 == 0 else [monitors[0], *reversed(monitors[1:])]
        for rate in prof.rates:
            for name in order:
                time.sleep(prof.settle_s)  # ComfyUI collects garbage 10 s after its last prompt
                mon = Monitor(name, comfy)
                mon.start()
                try:
                    time.sleep(prof.warmup_s)  # start-up reads are one-time, not per minute
                    load.start(rate, seed=1000 * rep + int(rate * 10))
                    b0, cpu0, t0 = mon.client_bytes() or 0, proc_cpu(pid), time.monotonic()
                    time.sleep(prof.window_s)
                    cpu1, b1 = proc_cpu(pid), mon.client_bytes() or 0
                    scale = 60.0 / (time.monotonic() - t0)
                finally:
                    load.stop()
                    mon.stop()
                cpu, nbytes = (cpu1 - cpu0) * scale, (b1 - b0) * scale
                rows.setdefault((rate, name), []).append((cpu, nbytes))
                log(f"  [real] rep {rep + 1} load {rate:g}/s {name}: {cpu:.3f} CPU s/min, "
                    f"{fmt_bytes(nbytes)}/min")
                trim(comfy, load)
    _report(result, version, size, prof, monitors, rows, full_bytes)
    return result


def _ratio(a: float, b: float) -> str:
    if not finite(a) or not finite(b):
        return "n/a"
    return fmt_ratio(a / b) if b > 0 else "ours below resolution"


def _report(result: SectionResult, version: str, size: int, prof: Profile, monitors: list[str],
            rows: dict, full_bytes: int) -> None:
    table = Table(
        f"ComfyUI {version}, history of {size:,} entries ({fmt_bytes(full_bytes)} as JSON): what the "
        f"ComfyUI process spends per minute (median, spread over {prof.reps} repetitions of "
        f"{prof.window_s:g} s)",
        ["load", "monitor", "ComfyUI CPU s/min", "net CPU s/min (− none)", "bytes ComfyUI sent it/min"],
    )
    ratios = Table(
        f"ComfyUI {version}: naive poller ÷ ours (CPU net of the no-monitor baseline; medians)",
        ["load", "baseline", "net CPU ratio", "bytes ratio"],
    )
    for rate in prof.rates:
        load_label = "idle" if rate == 0 else f"{rate:g}/s"
        base_cpu = Summary.of(r[0] for r in rows.get((rate, "none"), [])).median
        nets: dict[str, tuple[float, float]] = {}
        for name in monitors:
            vals = rows.get((rate, name), [])
            cpu, ncpu = Summary.of(r[0] for r in vals), Summary.of(r[0] - base_cpu for r in vals)
            nb = Summary.of(r[1] for r in vals)
            nets[name] = (ncpu.median, nb.median)
            table.rows.append([
                load_label, name, cpu.fmt(lambda v: f"{v:.3f}"),
                "—" if name == "none" else ncpu.fmt(lambda v: f"{v:+.3f}"),
                "—" if name == "none" else nb.fmt(fmt_bytes),
            ])
            key = f"{version}_{load_label.replace('/', 'per')}_{name.split()[0].strip('/')}"
            if name == "ours + plugin":
                key += "_plugin"
            result.numbers[f"{key}_cpu_s_per_min"] = cpu.median
            result.numbers[f"{key}_net_cpu_s_per_min"] = ncpu.median
            result.numbers[f"{key}_bytes_per_min"] = nb.median
        ours = nets.get("ours", (float("nan"), float("nan")))
        for name in monitors:
            if name not in ("none", "ours", "ours + plugin"):
                cpu_r, bytes_r = _ratio(nets[name][0], ours[0]), _ratio(nets[name][1], ours[1])
                ratios.rows.append([load_label, name, cpu_r, bytes_r])
    result.tables += [table, ratios]
    result.notes += [
        f"CPU: the ComfyUI process's utime+stime from /proc/PID/stat ({TICK} ticks/s, so a "
        f"{prof.window_s:g} s window resolves {60 / prof.window_s / TICK:.2f} s/min); net = minus the "
        "median of the no-monitor windows at the same load (values within ± that resolution are noise). "
        "Bytes: everything ComfyUI sent to the monitor (HTTP answers with headers, websocket frames), "
        "counted by a loopback relay in front of it (bench/byteproxy.py).",
        "Every window ran the same seeded load sequence and started "
        f"{prof.settle_s:g} s after the previous one (ComfyUI collects garbage 10 s after its last "
        f"prompt); monitors started {prof.warmup_s:g} s before the window, so the exporter's one-time "
        "start-up reads are not in the rows; the load's prompts were deleted from history after each "
        "window.",
    ]


BEGIN, END = "<!-- real-comfyui {v} begin -->", "<!-- real-comfyui {v} end -->"
HEADING = "## Real ComfyUI: what monitoring costs the ComfyUI process"


def write_section(path: Path, result: SectionResult, version: str, argv: list[str], machine: str) -> None:
    """Puts this version's tables into RESULTS.md between its markers, leaving everything else as is.

    The rest of RESULTS.md is produced by the simulator run; a real-ComfyUI run for one version must
    not rewrite it (nor the other version's block), so the block is replaced in place or appended
    under one shared heading.
    """
    from .report import _table

    begin, end = BEGIN.format(v=version), END.format(v=version)
    lines = [begin, f"### ComfyUI {version}", "",
             f"`python -m bench {' '.join(argv)}` on {machine}, {time.strftime('%Y-%m-%d')}.", ""]
    for t in result.tables:
        lines += _table(t)
    lines += [f"* {n}" for n in result.notes]
    lines += ["", end]
    block = "\n".join(lines)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        if HEADING not in text:
            text = text.rstrip("\n") + "\n\n" + HEADING + "\n\n" + (
                "Measured against a real local ComfyUI on the CPU (`python -m bench --comfyui-url URL "
                "--comfyui-pid PID`, method in bench/real_comfyui.py and docs/benchmarks.md), not the "
                "simulator: the seconds and bytes are the ComfyUI process's own.\n"
            )
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
