"""Section 3 — completeness under load: every failure counted, by error type, through faults.

Why: a monitor that is cheap but loses failures is useless. 20 prompts/s with 10 % failures (all six
failure kinds the simulator has, mapped to the five error types), 2 % interrupts and 10 % frontend
prompts with 50 KB workflows, for several minutes, with websocket drops and one ComfyUI restart
injected. The simulator's ledger (``/_sim/outcomes``: what reached history, restarts included) is
the truth; the exporter's /metrics after the queue drained is what was counted.

A restart wipes ComfyUI's history; prompts that finished in the instant before it and were not yet
polled are gone for any sidecar. The restart here is injected under load, so such a loss is
possible and is reported as measured, not hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .common import SectionResult, Table, Target, ensure_paths, http_get, metric_sum
from .workload import LoadGenerator, Mix, start_sim

ensure_paths()

from tests.support.stack import ExporterProcess  # noqa: E402

ERROR_TYPES = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")


@dataclass(frozen=True)
class Profile:
    seconds: float
    rate: float
    ws_drops: int


FULL = Profile(seconds=180.0, rate=20.0, ws_drops=3)
SMOKE = Profile(seconds=5.0, rate=20.0, ws_drops=1)


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    prof = SMOKE if smoke else FULL
    result = SectionResult("completeness", "3. Completeness under load")
    mix = Mix(failure_share=0.10, interrupt_share=0.02, frontend_share=0.10)
    sim = start_sim()
    exporter = None
    load = None
    events: list[str] = []
    try:
        exporter = ExporterProcess(["--no-gpu", "--comfyui-url", f"sim={sim.url}"]).start()
        time.sleep(1.0)  # baseline of the empty history taken
        load = LoadGenerator(sim.port, mix, prof.rate, seed=31).start()
        t0 = time.monotonic()
        # Faults at fixed fractions of the run: drops spread out, the restart in the middle.
        plan = sorted(
            [((k + 1) / (prof.ws_drops + 1) * 0.999, "drop") for k in range(prof.ws_drops)]
            + [(0.5, "restart")]
        )
        for frac, kind in plan:
            time.sleep(max(0.0, t0 + frac * prof.seconds - time.monotonic()))
            at = time.monotonic() - t0
            if kind == "drop":
                sim.faults(drop_websockets=True)
                sim.clear_faults()
            else:
                sim.restart(down_seconds=1.0)
            events.append(f"{kind} at {at:.0f} s")
        time.sleep(max(0.0, t0 + prof.seconds - time.monotonic()))
        load.stop()
        sim.wait_idle(120)
        truth = sim.outcomes()
        expected = {"finished": truth["finished"], "interrupted": truth["interrupted"], **truth["failures"]}

        def counted() -> dict[str, float]:
            text = http_get(exporter.url + "/metrics").decode()
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

        deadline = time.monotonic() + 20
        got = counted()
        while got["finished"] < expected["finished"] and time.monotonic() < deadline:
            time.sleep(0.25)
            got = counted()
        duration = time.monotonic() - t0
    finally:
        if load is not None:
            load.stop()
        if exporter is not None:
            exporter.stop()
        sim.stop()

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
        f"{truth['finished']:,} prompts reached history ({failures_true:,} failures); run took "
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
        f"Completeness: {got['finished']:,.0f} of {truth['finished']:,} prompts and "
        f"{sum(got[e] for e in ERROR_TYPES):,.0f} of {failures_true:,} failures counted at {prof.rate:g}/s "
        f"through {prof.ws_drops} websocket drops and a ComfyUI restart"
    )
    return result
