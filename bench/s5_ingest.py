"""Section 5 — ingestion throughput of the poller's pure code path and of websocket frames, one core.

Why measure the pure path: the exporter's history work per finished prompt is JSON decoding, the
tracker's new-vs-known decision, ``parse_history_item`` and the reducer; if that is slow, a burst of
completions (a batch of 500 cached prompts finishing in seconds) would back up the poll thread.
Items are recorded ComfyUI 0.8.0 history entries (tests/fixtures/comfyui-0.8.0) re-stamped with new
ids and increasing timestamps, in the same mix as section 1. Each batch is fed like a response to
``/history?max_items=b+1``: the previous batch's newest entry (the anchor) followed by ``b`` new ones.
The process is pinned to one core while measuring.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from .common import SectionResult, Summary, Table, ensure_paths

ensure_paths()

from comfyui_exporter.exposition.collector import Instance  # noqa: E402
from comfyui_exporter.model.history_tracker import HistoryTracker  # noqa: E402
from comfyui_exporter.model.parsers import parse_history, parse_history_item, parse_ws_text  # noqa: E402
from comfyui_exporter.model.state import InstanceState  # noqa: E402
from tests.support import recordings  # noqa: E402

Entry = tuple[str, dict[str, Any]]


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to a single CPU for the duration (the claim is 'on one core')."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {max(before)})
    except (AttributeError, OSError):
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def templates() -> dict[str, list[dict[str, Any]]]:
    """Recorded history entries by kind: success, error, interrupted, frontend (carries a workflow)."""
    kinds: dict[str, list[dict[str, Any]]] = {"success": [], "error": [], "interrupted": [], "frontend": []}
    for case in recordings.case_names():
        for item in recordings.history_items(case).values():
            prompt = item.get("prompt", [])
            extra = prompt[3] if len(prompt) > 3 and isinstance(prompt[3], dict) else {}
            final = item["status"]["messages"][-1][0] if item["status"].get("messages") else ""
            if "extra_pnginfo" in extra:
                kinds["frontend"].append(item)
            elif final == "execution_error":
                kinds["error"].append(item)
            elif final == "execution_interrupted":
                kinds["interrupted"].append(item)
            else:
                kinds["success"].append(item)
    return kinds


def make_items(n: int, seed: int = 1) -> list[Entry]:
    """``n`` entries of the mix (10 % frontend, 10 % failed, 2 % interrupted), ids and times re-stamped."""
    rng = random.Random(seed)
    kinds = templates()
    out: list[Entry] = []
    t_ms = 1_767_225_600_000
    for _i in range(n):
        r = rng.random()
        kind = "error" if r < 0.10 else "interrupted" if r < 0.12 else "success"
        if kind == "success" and rng.random() < 0.10:
            kind = "frontend"
        item = copy.deepcopy(rng.choice(kinds[kind]))
        prompt_id = f"{rng.getrandbits(128):032x}"
        t_ms += 50
        item["prompt"][1] = prompt_id
        if isinstance(item["prompt"][3], dict):
            item["prompt"][3]["create_time"] = t_ms - 40
        for k, (_event, data) in enumerate(item["status"]["messages"]):
            data["prompt_id"] = prompt_id
            data["timestamp"] = t_ms - 20 + k
        out.append((prompt_id, item))
    return out


def batches(items: list[Entry], b: int) -> list[list[Entry]]:
    """Responses of ``max_items=b+1``: anchor (the previous newest) + ``b`` new entries."""
    out = []
    for start in range(1, len(items) - b + 1, b):
        out.append(items[start - 1 : start + b])
    return out


def _fresh() -> tuple[HistoryTracker, Instance]:
    tracker = HistoryTracker()
    inst = Instance(InstanceState("bench"))
    return tracker, inst


def ingest(responses: list[list[Entry]], decode: list[bytes] | None) -> tuple[int, float]:
    """Feed every response through tracker + parser + reducer; returns (new prompts, seconds)."""
    tracker, inst = _fresh()
    # baseline with the first anchor so the first batch has a known entry
    first = responses[0][:1]
    for event in tracker.step(first, 32, 0.0).events:
        inst.apply(event)
    counted = 0
    t0 = time.perf_counter()
    for i, response in enumerate(responses):
        at = 1_767_225_600.0 + i
        entries = parse_history(json.loads(decode[i])) if decode is not None else response
        step = tracker.step(entries, len(entries), at)
        for event in step.events:
            inst.apply(event)
        for prompt_id, item in step.new:
            inst.apply(parse_history_item(prompt_id, item, at))
            counted += 1
    elapsed = time.perf_counter() - t0
    if inst.state.finished != counted:
        raise AssertionError(f"reducer counted {inst.state.finished}, fed {counted}")
    return counted, elapsed


def ws_frames(n: int) -> list[str]:
    """A progress storm: recorded progress/progress_state/status frames, repeated to ``n``."""
    pool = [
        json.dumps(message)
        for case in recordings.case_names()
        for _client, message in recordings.ws_text_frames(case)
        if message.get("type") in ("progress", "progress_state", "status", "executing")
    ]
    rng = random.Random(2)
    return [rng.choice(pool) for _ in range(n)]


def ws_ingest(frames: list[str]) -> float:
    inst = Instance(InstanceState("bench"))
    changed = 0
    t0 = time.perf_counter()
    for i, frame in enumerate(frames):
        events, hint = parse_ws_text(frame, 1_767_225_600.0 + i * 1e-4)
        for event in events:
            inst.apply(event)
        changed += hint
    return time.perf_counter() - t0


def end_to_end(rate: float, seconds: float) -> dict[str, float]:
    """Tiny prompts (1 in 10 failing) pushed at ``rate``/s through the simulator to a real exporter.

    The simulator runs such prompts at well over 1,000/s, so the exporter is the bottleneck; real
    ComfyUI manages ~110 tiny cached prompts/s (protocol doc §11).
    """
    from tests.support.stack import ExporterProcess

    from .common import http_get, metric_sum
    from .workload import start_sim

    sim = start_sim()
    exporter = ExporterProcess(["--no-gpu", "--comfyui-url", f"sim={sim.url}"])
    try:
        exporter.start()
        time.sleep(1.0)
        per_tick = max(1, round(rate / 10))
        t0 = time.monotonic()
        tick = 0
        while time.monotonic() - t0 < seconds:
            sim.enqueue(outcome="oom" if tick % 10 == 9 else "success", count=per_tick)
            tick += 1
            time.sleep(max(0.0, t0 + tick * per_tick / rate - time.monotonic()))
        sim.wait_idle(60)
        truth = float(sim.outcomes()["finished"])
        deadline = time.monotonic() + 8
        text = http_get(exporter.url + "/metrics").decode()
        while metric_sum(text, "comfyui_prompts_finished_total") < truth and time.monotonic() < deadline:
            time.sleep(0.2)
            text = http_get(exporter.url + "/metrics").decode()
        return {
            "rate": tick * per_tick / seconds,
            "truth": truth,
            "counted": metric_sum(text, "comfyui_prompts_finished_total"),
            "gaps": metric_sum(text, "comfyui_exporter_history_gaps_total"),
            "requests": metric_sum(text, "comfyui_exporter_requests_total", endpoint="history"),
        }
    finally:
        exporter.stop()
        sim.stop()


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    n_items = 1_500 if smoke else 20_000
    rounds = 1 if smoke else 3
    n_frames = 10_000 if smoke else 200_000
    e2e_rates = (100.0,) if smoke else (100.0, 200.0, 400.0, 800.0)
    e2e_seconds = 2.0 if smoke else 5.0
    result = SectionResult("ingest", "5. Ingestion throughput (one core)")
    log(f"  [ingest] building {n_items:,} recorded-shape history entries")
    items = make_items(n_items)
    mean_bytes = sum(len(json.dumps(it)) for _, it in items) / len(items)
    table = Table(
        f"Finished prompts per second through poller + reducer (mean entry {mean_bytes / 1000:.1f} KB; "
        f"median, spread over {rounds} rounds)",
        ["new entries per response", "without JSON decoding", "with JSON decoding of the response"],
    )
    with one_core():
        for b in (1, 16, 128):
            responses = batches(items, b)
            bodies = [json.dumps(dict(r)).encode() for r in responses]
            plain, decoded = [], []
            for _ in range(rounds):
                n, s = ingest(responses, None)
                plain.append(n / s)
                n, s = ingest(responses, bodies)
                decoded.append(n / s)
            p, d = Summary.of(plain), Summary.of(decoded)
            table.rows.append([str(b), p.fmt(lambda v: f"{v:,.0f}/s"), d.fmt(lambda v: f"{v:,.0f}/s")])
            result.numbers[f"prompts_per_s_batch{b}"] = p.median
            result.numbers[f"prompts_per_s_batch{b}_json"] = d.median
        frames = ws_frames(n_frames)
        ws = Summary.of(len(frames) / ws_ingest(frames) for _ in range(rounds))
    result.tables.append(table)
    wt = Table(
        "Websocket text frames per second (parse_ws_text + reducer; a progress storm of recorded "
        "progress, progress_state, status and executing frames)",
        ["frames", "frames/s"],
    )
    wt.rows.append([f"{n_frames:,}", ws.fmt(lambda v: f"{v:,.0f}/s")])
    result.tables.append(wt)
    result.numbers["ws_frames_per_s"] = ws.median
    et = Table(
        "End to end: tiny prompts pushed through the simulator to the real exporter process "
        f"({e2e_seconds:g} s per rate; default flags, history window up to 512 entries)",
        [
            "offered prompts/s",
            "reached history",
            "counted",
            "lost",
            "history gaps counted",
            "/history requests",
        ],
    )
    for rate in e2e_rates:
        log(f"  [ingest] end to end at {rate:g} prompts/s")
        r = end_to_end(rate, e2e_seconds)
        et.rows.append(
            [
                f"{r['rate']:.0f}",
                f"{r['truth']:,.0f}",
                f"{r['counted']:,.0f}",
                f"{r['truth'] - r['counted']:,.0f}",
                f"{r['gaps']:.0f}",
                f"{r['requests']:,.0f}",
            ]
        )
        result.numbers[f"e2e_lost_at_{rate:g}"] = r["truth"] - r["counted"]
    result.tables.append(et)
    result.notes.append(
        "End to end, the poll loop asks for the newest entries starting from the last batch size and "
        "doubling up to --history-max-items (512); when more entries than that finished between two "
        "polls, the older ones are lost and counted in comfyui_exporter_history_gaps_total."
    )
    result.notes.append(
        "One core (sched_setaffinity). With JSON decoding = what the poll thread does per response: "
        "json.loads + parse_history + HistoryTracker.step + parse_history_item + InstanceState.apply."
    )
    result.headlines.append(
        f"Ingestion on one core: {result.numbers['prompts_per_s_batch16_json']:,.0f} finished prompts/s "
        f"including JSON decoding (batches of 16), {ws.median:,.0f} websocket frames/s"
    )
    return result
