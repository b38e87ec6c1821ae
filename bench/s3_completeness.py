"""Section 3 — completeness under load: every failure counted, by error type, through faults.

Why: a monitor that is cheap but loses failures is useless. 20 prompts/s with 10 % failures (all six
failure kinds the simulator has, mapped to the five error types), 2 % interrupts and 10 % frontend
prompts with 50 KB workflows, for several minutes, with websocket drops and one ComfyUI restart
injected. The simulator's ledger (``/_sim/outcomes``: what reached history, restarts included) is
the truth; the exporter's /metrics after the queue drained is what was counted.

The restart of the main run is a crash in the middle of a generation (a 30 s prompt is running,
others are queued behind it), the usual way ComfyUI dies. A crash at the very instant a prompt
finishes is different: ComfyUI's history lives in memory, so a prompt that finished in the ~0.15 s
between its completion and the exporter's poll (debounce + one request) is gone for any sidecar.
A second, shorter run crashes ComfyUI at random instants under the same load to measure that loss
per crash, so the main table stays a statement about what the exporter could see.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .common import SectionResult, Table, Target, ensure_paths, http_get, metric_sum
from .workload import LoadGenerator, Mix, start_sim

ensure_paths()

from comfyui_exporter.sim.testing import SimHandle  # noqa: E402
from tests.support.stack import ExporterProcess  # noqa: E402

ERROR_TYPES = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")


@dataclass(frozen=True)
class Profile:
    seconds: float
    rate: float
    ws_drops: int
    drop_seconds: float  # how long the websocket stays refused after a drop
    crash_seconds: float  # length of the random-instant crash run (0: skip)
    crashes: int


FULL = Profile(seconds=150.0, rate=20.0, ws_drops=3, drop_seconds=2.0, crash_seconds=30.0, crashes=3)
SMOKE = Profile(seconds=5.0, rate=20.0, ws_drops=1, drop_seconds=0.5, crash_seconds=0.0, crashes=0)


def _counted(url: str) -> dict[str, float]:
    text = http_get(url + "/metrics").decode()
    out = {"finished": metric_sum(text, "comfyui_prompts_finished_total")}
    out["interrupted"] = metric_sum(text, "comfyui_prompts_interrupted_total")
    for et in ERROR_TYPES:
        out[et] = metric_sum(text, "comfyui_prompt_failures_total", error_type=et)
    for name in (
        "comfyui_restarts_total",
        "comfyui_exporter_history_gaps_total",
        "comfyui_exporter_websocket_reconnects_total",
    ):
        out[name] = metric_sum(text, name)
    return out


def _settle(sim: SimHandle, exporter: ExporterProcess) -> tuple[dict[str, int], dict[str, float]]:
    """Drain the queue, then let the exporter count until it has everything or stops moving (3 s)."""
    sim.wait_idle(120)
    truth = sim.outcomes()
    expected = {"finished": truth["finished"], "interrupted": truth["interrupted"], **truth["failures"]}
    deadline = time.monotonic() + 20
    got = _counted(exporter.url)
    still_since = time.monotonic()
    while got["finished"] < expected["finished"] and time.monotonic() < deadline:
        time.sleep(0.25)
        now = _counted(exporter.url)
        if now["finished"] != got["finished"]:
            still_since = time.monotonic()
        elif time.monotonic() - still_since > 3 + 5:  # one safety poll (5 s) and then some
            break
        got = now
    return expected, got


def _run_load(
    prof: Profile, seconds: float, plan: list[tuple[float, str]], log: Callable[[str], None]
) -> tuple[dict[str, int], dict[str, float], list[str], float]:
    """Load + faults at fractions of ``seconds``; returns (truth, counted, fault log, duration)."""
    mix = Mix(failure_share=0.10, interrupt_share=0.02, frontend_share=0.10)
    sim = start_sim()
    exporter = ExporterProcess(["--no-gpu", "--comfyui-url", f"sim={sim.url}"])
    load = None
    events: list[str] = []
    try:
        exporter.start()
        time.sleep(1.0)  # baseline of the empty history taken
        load = LoadGenerator(sim.port, mix, prof.rate, seed=31 + len(plan)).start()
        t0 = time.monotonic()
        for frac, kind in sorted(plan):
            at = t0 + frac * seconds
            if kind == "crash_mid_prompt":
                # a long generation is running when ComfyUI dies (queued prompts die with it)
                time.sleep(max(0.0, at - 3.0 - time.monotonic()))
                sim.enqueue(outcome="success", seconds=30.0, progress_steps=30)
            time.sleep(max(0.0, at - time.monotonic()))
            if kind == "drop":
                sim.faults(drop_websockets=True)
                time.sleep(prof.drop_seconds)
                sim.clear_faults()
            else:
                sim.restart(down_seconds=1.0)
            events.append(f"{kind.replace('_', ' ')} at {at - t0:.0f} s")
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        load.stop()
        expected, got = _settle(sim, exporter)
        return expected, got, events, time.monotonic() - t0
    finally:
        if load is not None:
            load.stop()
        exporter.stop()
        sim.stop()


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    prof = SMOKE if smoke else FULL
    result = SectionResult("completeness", "3. Completeness under load")
    plan = [((k + 1) / (prof.ws_drops + 2), "drop") for k in range(prof.ws_drops)]
    plan.append(((prof.ws_drops + 1) / (prof.ws_drops + 2), "crash_mid_prompt"))
    log(f"  [completeness] {prof.rate:g}/s for {prof.seconds:.0f} s with faults")
    expected, got, events, duration = _run_load(prof, prof.seconds, plan, log)
    table = Table(
        f"{prof.rate:g} prompts/s for {prof.seconds:.0f} s ({', '.join(events)}): "
        "simulator ledger vs exporter",
        ["outcome", "true (ledger)", "counted (/metrics)", "missing", "counted = true"],
    )
    all_equal = True
    for key in ("finished", "interrupted", *ERROR_TYPES):
        true, cnt = expected[key], got[key]
        all_equal &= cnt == true
        table.rows.append(
            [key, f"{true:,}", f"{cnt:,.0f}", f"{true - cnt:,.0f}", "yes" if cnt == true else "**no**"]
        )
        result.numbers[f"true_{key}"] = float(true)
        result.numbers[f"counted_{key}"] = cnt
    result.tables.append(table)
    ft = Table("Faults as the exporter saw them", ["metric", "value"])
    for name in (
        "comfyui_restarts_total",
        "comfyui_exporter_websocket_reconnects_total",
        "comfyui_exporter_history_gaps_total",
    ):
        ft.rows.append([f"`{name}`", f"{got[name]:.0f}"])
        result.numbers[name] = got[name]
    result.tables.append(ft)
    failures_true = sum(expected[e] for e in ERROR_TYPES)
    result.notes.append(
        f"{expected['finished']:,} prompts reached history ({failures_true:,} failures); run took "
        f"{duration:.0f} s including the drain. Prompts submitted while the simulated ComfyUI was "
        "down were rejected and "
        "never existed, like for real clients."
    )
    result.targets.append(
        Target(
            "completeness: counted = true for each error type",
            "all equal",
            ", ".join(f"{k} {got[k]:.0f}/{expected[k]}" for k in ("finished", *ERROR_TYPES)),
            all_equal,
        )
    )
    result.headlines.append(
        f"Completeness: {got['finished']:,.0f} of {expected['finished']:,} prompts and "
        f"{sum(got[e] for e in ERROR_TYPES):,.0f} of {failures_true:,} failures counted at {prof.rate:g}/s "
        f"through {prof.ws_drops} websocket drops and a ComfyUI crash"
    )
    if prof.crashes:
        log(f"  [completeness] {prof.crashes} crashes at random instants in {prof.crash_seconds:.0f} s")
        rng = random.Random(8)
        crash_plan = [
            ((k + rng.uniform(0.3, 0.7)) / prof.crashes, "crash_at_random_instant")
            for k in range(prof.crashes)
        ]
        c_expected, c_got, c_events, _ = _run_load(prof, prof.crash_seconds, crash_plan, log)
        lost = c_expected["finished"] - c_got["finished"]
        ct = Table(
            f"Crashes at random instants under {prof.rate:g} prompts/s ({', '.join(c_events)}): prompts that "
            "finished right before a crash are lost with ComfyUI's in-memory history",
            ["outcome", "true (ledger)", "counted", "missing"],
        )
        for key in ("finished", *ERROR_TYPES):
            ct.rows.append(
                [key, f"{c_expected[key]:,}", f"{c_got[key]:,.0f}", f"{c_expected[key] - c_got[key]:,.0f}"]
            )
        result.tables.append(ct)
        result.numbers["lost_per_random_crash"] = lost / prof.crashes
        result.notes.append(
            f"Random-instant crashes: {lost:.0f} prompt(s) lost over {prof.crashes} crashes "
            f"({lost / prof.crashes:.1f} per crash at {prof.rate:g}/s): the ones that completed between the "
            "exporter's last poll and the crash. No sidecar can count them (the history is gone); only the "
            "optional ComfyUI plugin sees them."
        )
    return result
