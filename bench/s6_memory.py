"""Section 6 — memory: bounded state means flat RSS, in-process over 100,000 prompts and in a real run.

Why two measurements: in-process through the reducer isolates the exporter's *state* (tracker
memory of 20,000 prompt ids, capped node/exception labels, 100 recent failures, 64 progress
entries) from everything else and can push 100,000 prompts in seconds; the real process adds
threads, HTTP sessions, the websocket and allocator behaviour, so a shorter real run checks that
nothing else grows. The in-process part runs in a child interpreter so that the benchmark's own
memory does not pollute the reading. Items are generated on the fly (never held), with failures
spread over 300 node types and 50 exception types to push every label cap.
"""

from __future__ import annotations

import copy
import gc
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .common import REPO, SectionResult, Table, Target, child_env, ensure_paths, fmt_bytes, rss_bytes

ensure_paths()

CHECKPOINTS_FULL = (0, 10_000, 20_000, 30_000, 50_000, 75_000, 100_000)
CHECKPOINTS_SMOKE = (0, 1_000, 3_000)
RATE = 100.0  # prompts/s in the real run


def child(checkpoints: tuple[int, ...]) -> None:
    """Runs in a fresh interpreter: feed prompts, print RSS and state sizes at each checkpoint."""
    from comfyui_exporter.collector import Instance
    from comfyui_exporter.history_tracker import HistoryTracker
    from comfyui_exporter.parsers import parse_history_item
    from comfyui_exporter.state import InstanceState

    from .s5_ingest import templates

    kinds = templates()
    rng = random.Random(4)
    tracker = HistoryTracker()
    inst = Instance(InstanceState("bench"))
    tracker.step([], 32, 0.0)  # baseline of an empty history
    gc.collect()
    rows: list[dict[str, Any]] = []
    t_ms = 1_767_225_600_000
    anchor: tuple[str, dict[str, Any]] | None = None
    fed = 0

    def checkpoint() -> None:
        gc.collect()
        s = inst.state
        rows.append(
            {
                "prompts": fed,
                "rss": rss_bytes(),
                "tracker_ids": len(tracker._seen),
                "node_failure_series": len(s.node_failures),
                "node_types": len(s.node_types.values),
                "exception_types": len(s.exception_types.values),
                "recent_failures": len(s.recent_failures),
                "finished": s.finished,
            }
        )

    checkpoint()
    batch = 16
    for target in checkpoints[1:]:
        while fed < target:
            entries = [anchor] if anchor else []
            for _ in range(min(batch, target - fed)):
                r = rng.random()
                kind = "error" if r < 0.3 else "interrupted" if r < 0.32 else "success"
                if kind == "success" and rng.random() < 0.1:
                    kind = "frontend"
                item = copy.deepcopy(rng.choice(kinds[kind]))
                prompt_id = f"{rng.getrandbits(128):032x}"
                t_ms += 10
                item["prompt"][1] = prompt_id
                for k, (event, data) in enumerate(item["status"]["messages"]):
                    data["timestamp"] = t_ms + k
                    if event == "execution_error":
                        data["node_type"] = f"NodeType{rng.randrange(300)}"
                        data["exception_type"] = f"pkg.Error{rng.randrange(50)}"
                entries.append((prompt_id, item))
            # The first response is the whole (young) history: fewer entries than asked for.
            step = tracker.step(entries, len(entries) + (0 if anchor else 1), t_ms / 1000)
            if step.more is not None:
                raise AssertionError("the tracker asked for more: the benchmark fed it wrongly")
            for event in step.events:
                inst.apply(event)
            for prompt_id, item in step.new:
                inst.apply(parse_history_item(prompt_id, item, t_ms / 1000))
                fed += 1
            anchor = entries[-1]
        checkpoint()
    print(json.dumps(rows))


def _in_process(checkpoints: tuple[int, ...]) -> list[dict[str, Any]]:
    code = f"from bench.s6_memory import child; child({checkpoints!r})"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=900
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _real_run(
    total: int, log: Callable[[str], None]
) -> tuple[list[tuple[int, int, float]], dict[str, float]]:
    """Exporter against the simulator at RATE prompts/s (tiny prompts, 1/3 failures)."""
    from tests.support.stack import ExporterProcess

    from .common import http_get, metric_sum
    from .workload import start_sim

    sim = start_sim()
    exporter = None
    samples: list[tuple[int, int, float]] = []
    try:
        exporter = ExporterProcess(["--no-gpu", "--comfyui-url", f"sim={sim.url}"]).start()
        assert exporter.proc is not None
        pid = exporter.proc.pid
        time.sleep(1.5)
        t0 = time.monotonic()
        samples.append((0, rss_bytes(pid), 0.0))
        rng = random.Random(9)
        sent = 0
        step = max(total // 8, 10)
        outcomes = ("success",) * 8 + ("oom", "runtime_error", "file_not_found", "cuda_error")
        # ~100 prompts/s: about what a real ComfyUI manages with tiny cached prompts (protocol doc §11).
        next_at = time.monotonic()
        while sent < total:
            n = min(10, total - sent)
            sim.enqueue(outcome=rng.choice(outcomes), count=n)
            sent += n
            next_at += n / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))
            if sent % step < 10:
                samples.append((sent, rss_bytes(pid), time.monotonic() - t0))
        sim.wait_idle(120)
        truth = sim.outcomes()["finished"]

        def counted() -> float:
            return metric_sum(http_get(exporter.url + "/metrics").decode(), "comfyui_prompts_finished_total")

        deadline = time.monotonic() + 30
        while counted() < truth and time.monotonic() < deadline:
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        text = http_get(exporter.url + "/metrics").decode()
        samples.append((int(truth), rss_bytes(pid), elapsed))
        info = {
            "truth": float(truth),
            "counted": metric_sum(text, "comfyui_prompts_finished_total"),
            "gaps": metric_sum(text, "comfyui_exporter_history_gaps_total"),
            "seconds": elapsed,
        }
        log(f"  [memory] real run: {int(truth)} prompts in {elapsed:.0f} s")
        return samples, info
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    checkpoints = CHECKPOINTS_SMOKE if smoke else CHECKPOINTS_FULL
    result = SectionResult("memory", "6. Memory")
    log(f"  [memory] in-process: {checkpoints[-1]:,} prompts through the reducer")
    rows = _in_process(checkpoints)
    table = Table(
        "In-process (child interpreter): RSS and the size of every growing structure",
        [
            "prompts",
            "RSS",
            "Δ RSS vs start",
            "tracker ids (cap 20,000)",
            "node×error×exception series",
            "node types (cap 64)",
            "exception types (cap 32)",
            "recent failures (cap 100)",
        ],
    )
    base = rows[0]["rss"]
    for r in rows:
        table.rows.append(
            [
                f"{r['prompts']:,}",
                fmt_bytes(r["rss"]),
                fmt_bytes(r["rss"] - base),
                f"{r['tracker_ids']:,}",
                f"{r['node_failure_series']:,}",
                str(r["node_types"]),
                str(r["exception_types"]),
                str(r["recent_failures"]),
            ]
        )
    result.tables.append(table)
    last = rows[-1]
    mid = max((r for r in rows[:-1] if r["prompts"] <= checkpoints[-1] // 2), key=lambda r: r["prompts"])
    growth = last["rss"] - mid["rss"]
    result.numbers.update(
        rss_start=base, rss_end=last["rss"], rss_growth_second_half=growth, prompts=last["prompts"]
    )

    total = 200 if smoke else 3_000
    log(f"  [memory] real exporter process: {total:,} prompts")
    samples, info = _real_run(total, log)
    rt = Table(
        f"Real exporter process (comfyui_exporter.cli against the simulator, {RATE:.0f} prompts/s)",
        ["prompts finished", "exporter RSS", "seconds"],
    )
    for n, rss, secs in samples:
        rt.rows.append([f"{n:,}", fmt_bytes(rss), f"{secs:.0f}"])
    result.tables.append(rt)
    result.numbers.update(
        real_rss_start=samples[0][1], real_rss_end=samples[-1][1], real_prompts=info["truth"]
    )
    result.notes += [
        "The tracker remembers the last 20,000 prompt ids (HistoryTracker.memory), so state grows until "
        "20,000 prompts and must be flat after; 'flat' is judged on the second half of the run.",
        f"Real run: counted {info['counted']:.0f} of {info['truth']:.0f} finished prompts, "
        f"{info['gaps']:.0f} history gaps, {info['seconds']:.0f} s.",
    ]
    flat = growth <= max(1_000_000, 0.02 * mid["rss"])
    result.targets.append(
        Target(
            "flat memory (bounded state)",
            "RSS flat after the bounded structures fill",
            f"in-process RSS {fmt_bytes(base)} at start → {fmt_bytes(last['rss'])} after "
            f"{last['prompts']:,} prompts; {fmt_bytes(growth)} growth over the second half; real process "
            f"{fmt_bytes(samples[0][1])} → {fmt_bytes(samples[-1][1])} after {info['truth']:.0f} prompts",
            flat,
        )
    )
    result.headlines.append(
        f"Memory is bounded: {fmt_bytes(growth)} RSS growth between {mid['prompts']:,} and "
        f"{last['prompts']:,} prompts in-process; the real exporter uses {fmt_bytes(samples[-1][1])} "
        f"after {info['truth']:,.0f} prompts"
    )
    return result
