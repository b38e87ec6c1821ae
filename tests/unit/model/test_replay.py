"""Every recorded case replayed through parser + tracker + reducer: counters equal the history.

The expectation is computed independently from each entry's final status message and the
contract's table of exception types (and cross-checked against the recorded /api/jobs view).
"""

from __future__ import annotations

from collections import Counter

import pytest

from comfyui_exporter.model.events import MalformedMessage, ProgressSeen, QueueRemaining
from comfyui_exporter.model.history_tracker import HistoryTracker
from comfyui_exporter.model.parsers import MalformedError, parse_history_item, parse_ws_text
from comfyui_exporter.model.state import InstanceState
from tests.support.recordings import case_names, history_items, jobs, ws_text_frames

ERROR_TYPE = {
    "torch.OutOfMemoryError": "oom",
    "FileNotFoundError": "model_not_found",
    "RuntimeError": "node_exception",
    "ValueError": "node_exception",
}
CASES = [c for c in case_names() if history_items(c)]


def _completion_order(items: dict[str, dict]) -> list[tuple[str, dict]]:
    return sorted(items.items(), key=lambda kv: kv[1]["status"]["messages"][-1][1].get("timestamp", 0))


def expected(items: dict[str, dict]) -> tuple[Counter, int, int]:
    failures: Counter = Counter()
    interrupted = successes = 0
    for item in items.values():
        kind, data = item["status"]["messages"][-1]
        if kind == "execution_error":
            failures[ERROR_TYPE[data["exception_type"]]] += 1
        elif kind == "execution_interrupted":
            interrupted += 1
        else:
            assert item["status"]["status_str"] == "success"
            successes += 1
    return failures, interrupted, successes


@pytest.mark.parametrize("case", CASES)
def test_counters_equal_recorded_outcomes(case: str) -> None:
    items = history_items(case)
    state = InstanceState("rec")
    tracker = HistoryTracker(baseline_items=8, max_items=64)
    assert tracker.step([], 8, 0.0).new == []  # exporter started on an empty history
    entries = _completion_order(items)
    step = tracker.step(entries, 64, 1.0)
    for event in step.events:
        state.apply(event)
    for prompt_id, item in step.new:
        state.apply(parse_history_item(prompt_id, item, 1.0))
    failures, interrupted, successes = expected(items)
    assert state.finished == len(items)
    assert state.interrupted == interrupted
    assert {k: v for k, v in state.failures.items() if v} == dict(failures)
    assert sum(state.execution["success"].counts) == successes
    assert len(state.recent_failures) == sum(failures.values())
    # Replaying the same responses again counts nothing twice.
    again = tracker.step(entries, 64, 2.0)
    assert again.new == []


@pytest.mark.parametrize("case", [c for c in CASES if jobs(c)])
def test_jobs_api_agrees_with_history_view(case: str) -> None:
    """ComfyUI 0.8.0 reports interrupts as `failed` without execution_error: same split as ours."""
    items = history_items(case)
    for job_id, job in jobs(case).items():
        if job_id not in items or job["status"] in ("pending", "in_progress"):
            continue
        finished = parse_history_item(job_id, items[job_id], 0.0)
        if job["status"] == "completed":
            assert finished.outcome.value == "success"
        elif "execution_error" in job:
            assert finished.outcome.value == "error"
        else:
            assert finished.outcome.value == "interrupted"


@pytest.mark.parametrize("case", case_names())
def test_every_recorded_websocket_frame_parses(case: str) -> None:
    kinds: Counter = Counter()
    for _client, message in ws_text_frames(case):
        import json

        try:
            events, _changed = parse_ws_text(json.dumps(message), 0.0)
        except MalformedError as exc:  # pragma: no cover - a failure message
            pytest.fail(f"{case}: {message.get('type')} did not parse: {exc}")
        for event in events:
            kinds[type(event)] += 1
        assert not any(isinstance(e, MalformedMessage) for e in events)
    statuses = sum(1 for _c, m in ws_text_frames(case) if m.get("type") == "status")
    assert kinds[QueueRemaining] == statuses
    progress = sum(1 for _c, m in ws_text_frames(case) if m.get("type") in ("progress", "progress_state"))
    assert kinds[ProgressSeen] == progress


def test_timings_come_from_history_timestamps() -> None:
    items = history_items("interrupt_during_slow_node")
    state = InstanceState("rec")
    for prompt_id, item in _completion_order(items):
        state.apply(parse_history_item(prompt_id, item, 0.0))
    interrupted = state.execution["interrupted"]
    assert interrupted.count == 1
    # The slow node ran about 4 s before the global interrupt (recorded 1795875393589 → …397592).
    assert 3.5 < interrupted.sum < 5.0
