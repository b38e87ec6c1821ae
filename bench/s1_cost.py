"""Section 1 — what monitoring costs ComfyUI: ours vs a full-/history poller vs an /api/jobs poller.

Method (why sequential against one prefilled simulator, not one simulator per poller):
``/_sim/stats`` counts per path, not per client, so two monitors polling one simulator at the same
time cannot be told apart; three simulators side by side on a 2-core machine would compete for the
CPU and inflate each other's server-side seconds (the full-history poller alone can keep a core
busy). So for each history size one simulator is filled once with a realistic history, and the three
monitors take turns against it, with the *same* background load running, and nothing else polling:

* ours: one exporter process per (size, repetition), a measured window of ``window_s`` per
  rate, scaled to a minute. Its websocket cost is added (bytes a second passive socket receives).
* the baselines: each poll measured on its own (stats before/after), times 12 polls a minute (5 s).
* before every window/poll the history is trimmed back to its nominal size by deleting the oldest
  entries (ComfyUI's own cap does exactly this at 10,000), outside any measurement.
* the order alternates per repetition (ours first, then baselines first), and ratios are taken
  within one repetition: absolute times on a shared machine are noise, ratios much less so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import comfyui_costs as costs
from .common import (
    SectionResult,
    Summary,
    Table,
    Target,
    ensure_paths,
    finite,
    fmt_bytes,
    fmt_ratio,
)
from .poller_full_history import FullHistoryPoller
from .poller_jobs import JobsPoller
from .workload import LoadGenerator, Mix, history_sim, trim_history
from .wscount import WsByteCounter

ensure_paths()

from comfyui_exporter.sim.testing import SimHandle  # noqa: E402
from tests.support.stack import ExporterProcess  # noqa: E402

MONITORS = ("ours", "full_history", "jobs_api")
LABEL = {
    "ours": "comfyui-exporter",
    "full_history": "full /history @5 s",
    "jobs_api": "/api/jobs?limit=50 @5 s",
}
IGNORED_PATHS = ("/prompt", "/ws")  # the load generator's submissions; websocket connects (0 bytes)


@dataclass(frozen=True)
class Profile:
    sizes: tuple[int, ...]
    rates: tuple[float, ...]
    reps: int
    window_s: float
    baseline_polls: dict[int, int]  # per history size: a 10k full-history poll takes seconds
    settle_s: float


FULL = Profile(
    (100, 1000, 10000),
    (0.0, 1.0, 5.0, 20.0),
    reps=2,
    window_s=10.0,
    baseline_polls={100: 2, 1000: 2, 10000: 1},
    settle_s=1.0,
)
SMOKE = Profile((100,), (0.0, 5.0), reps=1, window_s=2.0, baseline_polls={100: 1}, settle_s=0.3)


@dataclass
class Cost:
    """Per-minute cost of one monitor in one configuration and repetition."""

    requests: float = 0.0
    http_bytes: float = 0.0
    ws_bytes: float = 0.0
    sim_seconds: float = 0.0
    comfy_ms: float = 0.0
    paths: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    history_len: tuple[int, int] = (0, 0)
    finished: float = 0.0  # prompts that reached history per minute (ours' windows only)

    @property
    def bytes(self) -> float:
        return self.http_bytes + self.ws_bytes


Key = tuple[int, float, str, int]  # size, rate, monitor, rep


def _delta(before: dict, after: dict) -> dict[str, tuple[float, float, float]]:
    out = {}
    for path, now in after["requests"].items():
        if path in IGNORED_PATHS:
            continue
        prev = before["requests"].get(path, {"count": 0, "bytes": 0, "server_seconds": 0.0})
        d = (
            now["count"] - prev["count"],
            now["bytes"] - prev["bytes"],
            now["server_seconds"] - prev["server_seconds"],
        )
        if d[0]:
            out[path] = d
    return out


def _cost(
    delta: dict[str, tuple[float, float, float]], scale: float, history_len: float, jobs_all: bool
) -> Cost:
    c = Cost()
    for path, (count, nbytes, secs) in delta.items():
        c.requests += count * scale
        c.http_bytes += nbytes * scale
        c.sim_seconds += secs * scale
        c.comfy_ms += costs.estimate_ms(path, history_len, count, nbytes, jobs_all) * scale
        c.paths[path] = (count * scale, nbytes * scale, secs * scale)
    return c


def _add(a: Cost, b: Cost, n: int) -> Cost:
    """Running mean of per-poll costs."""
    out = Cost(
        requests=a.requests + b.requests / n,
        http_bytes=a.http_bytes + b.http_bytes / n,
        sim_seconds=a.sim_seconds + b.sim_seconds / n,
        comfy_ms=a.comfy_ms + b.comfy_ms / n,
        history_len=b.history_len if a.history_len == (0, 0) else a.history_len,
    )
    for path, v in b.paths.items():
        prev = a.paths.get(path, (0.0, 0.0, 0.0))
        out.paths[path] = tuple(p + x / n for p, x in zip(prev, v, strict=True))  # type: ignore[assignment]
    return out


def _settle(sim: SimHandle, load: LoadGenerator, rate: float, size: int, settle_s: float) -> None:
    load.set_rate(rate)
    if rate == 0:
        sim.wait_idle(timeout=60)
    trim_history(sim, size)
    time.sleep(settle_s)


def _measure_ours(
    sim: SimHandle,
    load: LoadGenerator,
    size: int,
    rep: int,
    prof: Profile,
    out: dict[Key, Cost],
    startup: list,
) -> None:
    counter = WsByteCounter(sim.ws_url).start()
    before_start = sim.stats()
    n_stats = before_start["requests"].get("/system_stats", {}).get("count", 0)
    exporter = ExporterProcess(
        ["--no-gpu", "--comfyui-url", f"sim={sim.url}", "--poll-interval", "5"]
    ).start()
    try:
        # The first poll (with /system_stats) marks the start of its 15 s system-stats schedule.
        deadline = time.monotonic() + 15
        while sim.stats()["requests"].get("/system_stats", {}).get("count", 0) <= n_stats:
            if time.monotonic() > deadline:
                raise TimeoutError("exporter never polled the simulator")
            time.sleep(0.02)
        time.sleep(0.5)
        first = sim.stats()
        startup.append((size, _delta(before_start, first)))
        windows = []
        for rate in prof.rates:
            _settle(sim, load, rate, size, prof.settle_s)
            o0, s0, w0 = sim.outcomes(), sim.stats(), counter.snapshot()
            t0 = time.monotonic()
            time.sleep(prof.window_s)
            s1, w1, o1 = sim.stats(), counter.snapshot(), sim.outcomes()
            windows.append((rate, 60.0 / (time.monotonic() - t0), s0, s1, w0, w1, o0, o1))
        # /system_stats runs on its own 15 s schedule, which a short window samples as 0 or 1 call:
        # charge it by the schedule (4 a minute) at its measured per-call cost instead.
        calls = _delta(before_start, sim.stats()).get("/system_stats", (1, 0, 0.0))
        per_call = (calls[1] / calls[0], calls[2] / calls[0])
        for rate, scale, s0, s1, w0, w1, o0, o1 in windows:
            delta = _delta(s0, s1)
            delta.pop("/system_stats", None)
            hist = (s0["history_len"] + s1["history_len"]) / 2
            cost = _cost(delta, scale, hist, jobs_all=False)
            schedule = _cost({"/system_stats": (4, 4 * per_call[0], 4 * per_call[1])}, 1.0, hist, False)
            cost.requests += schedule.requests
            cost.http_bytes += schedule.http_bytes
            cost.sim_seconds += schedule.sim_seconds
            cost.comfy_ms += schedule.comfy_ms
            cost.paths["/system_stats"] = schedule.paths["/system_stats"]
            cost.ws_bytes = (w1[0] - w0[0]) * scale
            cost.history_len = (s0["history_len"], s1["history_len"])
            cost.finished = (o1["finished"] - o0["finished"]) * scale
            out[(size, rate, "ours", rep)] = cost
    finally:
        exporter.stop()
        counter.stop()


def _measure_baselines(
    sim: SimHandle, load: LoadGenerator, size: int, rep: int, prof: Profile, out: dict[Key, Cost]
) -> None:
    for rate in prof.rates:
        _settle(sim, load, rate, size, prof.settle_s)
        for monitor, poller in (
            ("full_history", FullHistoryPoller(sim.url, parse=False)),
            ("jobs_api", JobsPoller(sim.url, parse=False)),
        ):
            total = Cost()
            polls = prof.baseline_polls.get(size, 1)
            for _ in range(polls):
                trim_history(sim, size)
                s0 = sim.stats()
                poller.poll_once()
                s1 = sim.stats()
                one = _cost(_delta(s0, s1), 12.0, s0["history_len"], jobs_all=monitor == "jobs_api")
                one.history_len = (s0["history_len"], s1["history_len"])
                total = _add(total, one, polls)
            out[(size, rate, monitor, rep)] = total


def _parse_time(sim: SimHandle) -> tuple[int, float]:
    """What one full-history response costs the *poller* to decode (its own CPU, not ComfyUI's)."""
    from .common import http_get

    raw = http_get(sim.url + "/history", timeout=120)
    started = time.perf_counter()
    json.loads(raw)
    return len(raw), time.perf_counter() - started


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    prof = SMOKE if smoke else FULL
    mix = Mix()
    result = SectionResult("cost", "1. Cost to ComfyUI")
    out: dict[Key, Cost] = {}
    startup: list[tuple[int, dict]] = []
    parse_times: dict[int, tuple[int, float]] = {}
    newest_frontend_bytes: dict[int, int] = {}
    for size in prof.sizes:
        log(f"  [cost] filling a history of {size} entries")
        sim = history_sim(size, mix)
        load = LoadGenerator(sim.port, mix, 0.0, seed=size).start()
        try:
            parse_times[size] = _parse_time(sim)
            for rep in range(prof.reps):
                ours_first = rep % 2 == 0
                for phase in ("ours", "baselines") if ours_first else ("baselines", "ours"):
                    if phase == "ours":
                        _measure_ours(sim, load, size, rep, prof, out, startup)
                    else:
                        _measure_baselines(sim, load, size, rep, prof, out)
                log(f"  [cost] size {size} rep {rep + 1}/{prof.reps} done")
            load.set_rate(0)
            sim.wait_idle(60)
            # One extra fact for the worst idle case: the newest entry is a 50 KB frontend prompt.
            from .workload import BodyFactory, PromptSpec, Submitter

            sub = Submitter(sim.port)
            sub.post(BodyFactory(mix).body(PromptSpec("success", True, "frontend-tab-0"), fast=True))
            sub.close()
            sim.wait_idle(30)
            from .common import http_get

            newest_frontend_bytes[size] = len(http_get(sim.url + "/history?max_items=1"))
        finally:
            load.stop()
            sim.stop()
    _report(result, prof, out, startup, parse_times, newest_frontend_bytes)
    return result


def _summ(out: dict[Key, Cost], size: int, rate: float, monitor: str, attr: str, reps: int) -> Summary:
    return Summary.of(
        getattr(out[(size, rate, monitor, r)], attr) for r in range(reps) if (size, rate, monitor, r) in out
    )


def _ratio(out: dict[Key, Cost], size: int, rate: float, monitor: str, attr: str, reps: int) -> Summary:
    vals = []
    for r in range(reps):
        ours, other = out.get((size, rate, "ours", r)), out.get((size, rate, monitor, r))
        if ours is None or other is None:
            continue
        a, b = getattr(other, attr), getattr(ours, attr)
        vals.append(a / b if b > 0 else float("inf"))
    return Summary.of(vals)


def _rate_label(rate: float) -> str:
    return "idle" if rate == 0 else f"{rate:g}/s"


def _report(
    result: SectionResult,
    prof: Profile,
    out: dict[Key, Cost],
    startup: list[tuple[int, dict]],
    parse_times: dict[int, tuple[int, float]],
    newest_frontend: dict[int, int],
) -> None:
    reps = prof.reps
    mib = lambda v: fmt_bytes(v)  # noqa: E731
    ms = lambda v: f"{v:,.1f} ms" if v < 10000 else f"{v / 1000:,.1f} s"  # noqa: E731
    cost_table = Table(
        "Cost per minute of monitoring (median, spread over repetitions)",
        [
            "history",
            "load",
            "monitor",
            "requests/min",
            "HTTP bytes/min",
            "websocket bytes/min",
            "sim server time/min",
            "est. ComfyUI time/min (§11)",
        ],
    )
    ratio_table = Table(
        "Ratios, baseline ÷ ours, measured within the same repetition (median, spread)",
        [
            "history",
            "load",
            "baseline",
            "bytes (ours incl. websocket)",
            "sim server time",
            "est. ComfyUI time (§11)",
        ],
    )
    for size in prof.sizes:
        for rate in prof.rates:
            for monitor in MONITORS:
                if (size, rate, monitor, 0) not in out:
                    continue
                hl = out[(size, rate, monitor, 0)].history_len
                cost_table.rows.append(
                    [
                        f"{size:,} ({hl[0]:,}→{hl[1]:,})" if monitor == "ours" else f"{size:,}",
                        _rate_label(rate),
                        LABEL[monitor],
                        _summ(out, size, rate, monitor, "requests", reps).fmt(lambda v: f"{v:,.0f}"),
                        _summ(out, size, rate, monitor, "http_bytes", reps).fmt(mib),
                        _summ(out, size, rate, monitor, "ws_bytes", reps).fmt(mib)
                        if monitor == "ours"
                        else "—",
                        _summ(out, size, rate, monitor, "sim_seconds", reps).fmt(lambda v: ms(v * 1000)),
                        _summ(out, size, rate, monitor, "comfy_ms", reps).fmt(ms),
                    ]
                )
            for monitor in ("full_history", "jobs_api"):
                rb = _ratio(out, size, rate, monitor, "bytes", reps)
                rs = _ratio(out, size, rate, monitor, "sim_seconds", reps)
                rc = _ratio(out, size, rate, monitor, "comfy_ms", reps)
                ratio_table.rows.append(
                    [
                        f"{size:,}",
                        _rate_label(rate),
                        LABEL[monitor],
                        rb.fmt(fmt_ratio),
                        rs.fmt(fmt_ratio),
                        rc.fmt(fmt_ratio),
                    ]
                )
                key = f"{monitor}_over_ours_{size}_{_rate_label(rate).replace('/', 'per')}"
                result.numbers[f"{key}_bytes"] = rb.median
                result.numbers[f"{key}_comfy_time"] = rc.median
                result.numbers[f"{key}_sim_time"] = rs.median
    result.tables += [cost_table, ratio_table]

    amp = Table(
        "Ours under load: history bytes fetched per finished prompt (1.0× = each new entry fetched once)",
        [
            "history",
            "load",
            "finished/min",
            "/history requests per finished prompt",
            "/history bytes per finished prompt",
            "÷ mean entry size",
        ],
    )
    for size in prof.sizes:
        mean_entry = parse_times[size][0] / size if size in parse_times else float("nan")
        for rate in prof.rates:
            if rate == 0:
                continue
            per_req, per_bytes, finished = [], [], []
            for r in range(reps):
                c = out.get((size, rate, "ours", r))
                if c is None or c.finished <= 0:
                    continue
                h = c.paths.get("/history", (0.0, 0.0, 0.0))
                per_req.append(h[0] / c.finished)
                per_bytes.append(h[1] / c.finished)
                finished.append(c.finished)
            if not finished:
                continue
            pb = Summary.of(per_bytes)
            amp.rows.append(
                [
                    f"{size:,}",
                    _rate_label(rate),
                    Summary.of(finished).fmt(lambda v: f"{v:,.0f}"),
                    Summary.of(per_req).fmt(lambda v: f"{v:.2f}"),
                    pb.fmt(fmt_bytes),
                    Summary.of([b / mean_entry for b in per_bytes]).fmt(lambda v: f"{v:.1f}×"),
                ]
            )
            result.numbers[f"ours_fetch_amplification_{size}_{_rate_label(rate).replace('/', 'per')}"] = (
                pb.median / mean_entry
            )
    result.tables.append(amp)

    st = Table(
        "Exporter start-up (one-time: baseline of 32 entries, first /system_stats and queue read)",
        ["history", "requests", "bytes", "sim server time"],
    )
    seen: set[int] = set()
    for size, delta in startup:
        if size in seen:
            continue
        seen.add(size)
        st.rows.append(
            [
                f"{size:,}",
                f"{sum(v[0] for v in delta.values()):.0f}",
                fmt_bytes(sum(v[1] for v in delta.values())),
                f"{sum(v[2] for v in delta.values()) * 1000:.1f} ms",
            ]
        )
    result.tables.append(st)

    pt = Table(
        "The full-history poller's own work per poll (decoding one response, on this machine)",
        ["history", "response", "json.loads", "share of a 5 s interval"],
    )
    for size, (nbytes, secs) in parse_times.items():
        pt.rows.append([f"{size:,}", fmt_bytes(nbytes), f"{secs:.2f} s", f"{secs / 5 * 100:.0f} %"])
        result.numbers[f"full_history_response_bytes_{size}"] = nbytes
    result.tables.append(pt)

    src = Table(
        "Real-ComfyUI costs used for the estimate (comfyui-protocol.md §11, 2-core box, loopback)",
        ["call", "recorded time", "recorded size", "how it is used here"],
    )
    src.rows = [list(r) for r in costs.SOURCE_ROWS]
    result.tables.append(src)

    result.notes += [
        "History of realistic entries: 10 % frontend prompts with a 50 KB UI workflow, 10 % failures "
        "(tracebacks), 2 % interrupted, the rest small API prompts; load prompts follow the same mix "
        "(Poisson arrivals; half the API prompts without client_id, so progress is broadcast).",
        f"Ours: a {prof.window_s:g} s window per configuration scaled to one minute, plus /system_stats "
        "charged by its schedule (4 calls a minute at the measured per-call cost); baselines: each poll "
        "measured alone (1–2 per configuration and repetition), times 12 polls a minute.",
        "The history column of ours shows the entry count at the start→end of its window (it grows with "
        "the load; it is trimmed back before every window and every baseline poll).",
        "Sim server time is the simulator's (aiohttp), not ComfyUI's; the estimate column translates each "
        "monitor's request counts and bytes with ComfyUI's recorded costs (table below). Websocket sends "
        "are not in §11, so the estimate leaves them out; their bytes are in the bytes ratio.",
        "The /api/jobs?limit=50 poller is cheap on the wire but not complete: it sees at most 50 jobs per "
        "poll, sorted by create_time, so above 10 completions/s (50 per 5 s) it misses some; 0.8.0 reports "
        "interrupted prompts as failed without an error. The full-history poller and ours are complete.",
    ]
    for size, nbytes in newest_frontend.items():
        result.notes.append(
            f"Worst idle case at {size:,} entries: when the newest entry is a frontend prompt, each idle "
            f"safety poll returns {fmt_bytes(nbytes)} ({fmt_bytes(nbytes * 12)}/min instead of the "
            "measured idle row)."
        )

    # Headlines (both directions stated plainly) and the idle target.
    def vs(r: float, what: str, less: str = "less") -> str:
        if not finite(r) or r <= 0:
            return f"n/a {what}"
        return f"{fmt_ratio(r)} {less} {what}" if r >= 1 else f"{fmt_ratio(1 / r)} MORE {what}"

    big, small, top = max(prof.sizes), min(prof.sizes), max(prof.rates)
    for size, rate in dict.fromkeys(((big, 0.0), (big, top), (small, top))):
        if (size, rate, "ours", 0) not in out:
            continue
        rc = _ratio(out, size, rate, "full_history", "comfy_ms", reps).median
        rb = _ratio(out, size, rate, "full_history", "bytes", reps).median
        rj = _ratio(out, size, rate, "jobs_api", "comfy_ms", reps).median
        rjb = _ratio(out, size, rate, "jobs_api", "bytes", reps).median
        result.headlines.append(
            f"Cost, {_rate_label(rate)} with {size:,} history entries: {vs(rc, 'ComfyUI time')} and "
            f"{vs(rb, 'bytes', 'fewer')} than a full-/history poller at 5 s; {vs(rj, 'ComfyUI time')} and "
            f"{vs(rjb, 'bytes', 'fewer')} than an /api/jobs?limit=50 poller (est. ComfyUI time from §11)"
        )
    for size in prof.sizes:
        checks = {
            attr: _ratio(out, size, 0.0, "full_history", attr, reps).median
            for attr in ("bytes", "sim_seconds", "comfy_ms")
        }
        met = all(finite(v) and v >= 100 for v in checks.values())
        result.targets.append(
            Target(
                f"idle cost ≤ 1/100 of a full-history poller ({size:,} entries)",
                "≥ 100× cheaper",
                f"bytes {fmt_ratio(checks['bytes'])}, sim time {fmt_ratio(checks['sim_seconds'])}, "
                f"est. ComfyUI time {fmt_ratio(checks['comfy_ms'])}",
                met,
            )
        )
