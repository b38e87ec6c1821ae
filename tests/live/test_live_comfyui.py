"""The exporter against a real ComfyUI: its counters must equal ComfyUI's own history.

Run: ``COMFYUI_LIVE_URL=http://127.0.0.1:18188 pytest -m live tests/live`` (see conftest.py for the
restart and plugin groups). Every check works on deltas, so a ComfyUI with older history (or one
that ran the suite before) is fine; nothing else may submit prompts to it while the suite runs.
Numbers worth keeping (lag) are printed and, with ``COMFYUI_LIVE_REPORT=FILE``, written as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.real_comfyui import ERROR_TYPES, EXPECTED, RealComfyUI, Truth
from tests.support.stack import ExporterProcess, wait_until

from .conftest import FAST, RESTART_CMD

pytestmark = pytest.mark.live
FAILING = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")


def counts(exporter: ExporterProcess, instance: str = "live") -> dict[str, float]:
    s = exporter.samples()

    def v(name: str, **labels: str) -> float:
        return s.get((name, frozenset({("comfyui", instance), *labels.items()})), 0.0)

    out = {
        "finished": v("comfyui_prompts_finished_total"),
        "interrupted": v("comfyui_prompts_interrupted_total"),
        "restarts": v("comfyui_restarts_total"),
    }
    out.update({et: v("comfyui_prompt_failures_total", error_type=et) for et in ERROR_TYPES})
    return out


def expected_after(before: dict[str, float], truth: Truth) -> dict[str, float]:
    want = dict(before)
    want["finished"] += truth.finished
    want["interrupted"] += truth.interrupted
    for et, n in truth.failures.items():
        want[et] += n
    return want


def wait_counts(exporter: ExporterProcess, want: dict[str, float], timeout: float = 30.0) -> None:
    keys = ("finished", "interrupted", *ERROR_TYPES)
    wait_until(
        lambda: all(counts(exporter)[k] == want[k] for k in keys),
        timeout,
        0.2,
        what=f"exporter counts == ComfyUI history {want}",
    )


def report(key: str, value: object) -> None:
    """Keeps a measured number: printed, and merged into $COMFYUI_LIVE_REPORT when set."""
    print(f"\n[live] {key}: {value}")
    path = os.environ.get("COMFYUI_LIVE_REPORT")
    if path:
        data = json.loads(Path(path).read_text()) if os.path.exists(path) else {}
        data[key] = value
        with open(path, "w") as f:
            json.dump(data, f, indent=1)


def submit_mix(comfy: RealComfyUI, client_id: str | None, tag: str) -> dict[str, str]:
    """One prompt per outcome the exporter counts, plus an interrupted one; returns id -> wanted."""
    wanted = {}
    for mode, outcome in EXPECTED.items():
        wanted[comfy.submit(mode, client_id=client_id, tag=tag)] = outcome
    slow = comfy.submit("sleep", client_id=client_id, seconds=30.0, tag=tag)
    wanted[slow] = "interrupted"
    comfy.interrupt_when_running(slow)
    return wanted


def test_counts_equal_history_with_and_without_client_id(comfy: RealComfyUI, exporter) -> None:
    comfy.wait_idle()
    time.sleep(2)  # anything that finished before this test has been counted
    before = counts(exporter)
    tag = uuid.uuid4().hex[:8]
    wanted = {}
    for client_id in (None, f"someone-else-{tag}"):  # ComfyUI sends events only to that client
        wanted.update(submit_mix(comfy, client_id, tag))
    truth = comfy.truth(wanted)
    assert truth.outcome_of == wanted, "ComfyUI recorded other outcomes than the test node was asked for"
    assert truth.finished == 14 and truth.interrupted == 2 and all(truth.failures[et] == 2 for et in FAILING)
    wait_counts(exporter, expected_after(before, truth))
    failures = {f["prompt_id"]: f for f in exporter.failures()}
    for pid, outcome in wanted.items():
        if outcome in FAILING:
            assert failures[pid]["error_type"] == outcome
    time.sleep(3)  # counted once: more polls change nothing
    assert counts(exporter) == {**expected_after(before, truth), "restarts": before["restarts"]}
    report(f"{comfy.version()}.counts", {"prompts": truth.finished, "interrupted": truth.interrupted,
                                         "failures": truth.failures, "matched": True})


def test_failure_reaches_metrics_quickly(comfy: RealComfyUI) -> None:
    """Lag from ComfyUI recording an execution_error to /metrics showing it, exporter defaults."""
    lags = []
    proc = ExporterProcess(["--no-gpu", "--comfyui-url", f"live={comfy.url}"]).start()
    try:
        wait_until(lambda: proc.value("comfyui_up", comfyui="live") == 1, 30, what="up")
        time.sleep(1.0)
        for i, mode in enumerate(("oom", "cuda_error", "model_not_found", "oom", "node_exception")):
            comfy.wait_idle()
            before = counts(proc)[mode]
            pid = comfy.submit(mode, client_id=None if i % 2 else f"other-{i}", tag=f"lag-{i}")
            deadline = time.monotonic() + 60
            while counts(proc)[mode] == before:
                assert time.monotonic() < deadline, f"{mode} never reached /metrics"
                time.sleep(0.02)
            seen = time.time()
            truth = comfy.truth([pid])
            lags.append(seen - truth.error_ms[pid] / 1000.0)
            time.sleep(1.0)  # let the websocket go quiet, like between real prompts
    finally:
        proc.stop()
    summary = {"median": round(statistics.median(lags), 3), "max": round(max(lags), 3)}
    report(f"{comfy.version()}.lag_s", {**summary, "all": [round(x, 3) for x in lags]})
    assert max(lags) < 10.0, lags  # the default safety poll is 30 s: this is the websocket path


def test_exporter_restart_counts_nothing_twice(comfy: RealComfyUI) -> None:
    args = ["--no-gpu", "--comfyui-url", f"live={comfy.url}", *FAST]
    first = ExporterProcess(args).start()
    try:
        wait_until(lambda: first.value("comfyui_up", comfyui="live") == 1, 30, what="up")
        time.sleep(1.5)
        before = counts(first)
        truth = comfy.truth([comfy.submit(m, tag="restart-a") for m in ("oom", "oom", "cuda_error")])
        wait_counts(first, expected_after(before, truth))
    finally:
        first.stop()
    comfy.truth([comfy.submit("model_load_error", tag="while-down")])  # finishes while no exporter runs
    second = ExporterProcess(args).start()
    try:
        wait_until(lambda: second.value("comfyui_up", comfyui="live") == 1, 30, what="up again")
        time.sleep(2.5)  # several polls over a history that holds everything above
        zero = counts(second)
        assert zero["finished"] == 0 and all(zero[et] == 0 for et in ERROR_TYPES), zero
        truth = comfy.truth([comfy.submit("oom", tag="restart-b")])
        wait_counts(second, expected_after(zero, truth))
        time.sleep(2.5)
        assert counts(second)["finished"] == 1 and counts(second)["oom"] == 1
    finally:
        second.stop()


@pytest.mark.live_restart
def test_comfyui_restart_is_counted_and_nothing_lost(comfy: RealComfyUI, exporter) -> None:
    comfy.wait_idle()
    time.sleep(2)
    before = counts(exporter)
    truth_a = comfy.truth([comfy.submit(m, tag="before-restart") for m in ("oom", "success")])
    wait_counts(exporter, expected_after(before, truth_a))
    started = time.monotonic()
    subprocess.run(RESTART_CMD, shell=True, check=True, timeout=600)
    down_s = time.monotonic() - started
    # The first prompt of the new process may finish before the exporter has reconnected.
    truth_b = comfy.truth([comfy.submit("cuda_error", tag="after-restart")])
    restarted = before["restarts"] + 1
    wait_until(lambda: counts(exporter)["restarts"] == restarted, 90, 0.5, what="restart counted")
    want = expected_after(expected_after(before, truth_a), truth_b)
    wait_counts(exporter, want, 60)
    time.sleep(3)
    assert counts(exporter) == {**want, "restarts": before["restarts"] + 1}
    report(f"{comfy.version()}.comfyui_restart", {"restart_cmd_s": round(down_s, 1), "counted": True})
