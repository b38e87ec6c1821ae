"""Every recorded case (0.8.0 and 0.3.64) replayed through parser + tracker + reducer: counters
equal the history.

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
from tests.support.recordings import VERSIONS, case_names, history_items, jobs, ws_text_frames

ERROR_TYPE = {
    "torch.OutOfMemoryError": "oom",
    "FileNotFoundError": "model_not_found",
    "RuntimeError": "node_exception",
    "ValueError": "node_exception",
}
CASES = [
    pytest.param(v, c, id=f"{v}-{c}") for v in VERSIONS for c in case_names(v) if history_items(c, v)
]
ALL_CASES = [pytest.param(v, c, id=f"{v}-{c}") for v in VERSIONS for c in case_names(v)]


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


@pytest.mark.parametrize(("version", "case"), CASES)
def test_counters_equal_recorded_outcomes(version: str, case: str) -> None:
    items = history_items(case, version)
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


@pytest.mark.parametrize("case", [c for c in case_names() if history_items(c) and jobs(c)])
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


@pytest.mark.parametrize(("version", "case"), ALL_CASES)
def test_every_recorded_websocket_frame_parses(version: str, case: str) -> None:
    kinds: Counter = Counter()
    frames = ws_text_frames(case, version)
    for _client, message in frames:
        import json

        try:
            events, _changed = parse_ws_text(json.dumps(message), 0.0)
        except MalformedError as exc:  # pragma: no cover - a failure message
            pytest.fail(f"{case}: {message.get('type')} did not parse: {exc}")
        for event in events:
            kinds[type(event)] += 1
        assert not any(isinstance(e, MalformedMessage) for e in events)
    statuses = sum(1 for _c, m in frames if m.get("type") == "status")
    assert kinds[QueueRemaining] == statuses
    progress = sum(1 for _c, m in frames if m.get("type") in ("progress", "progress_state"))
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


def test_0364_history_has_no_create_time_so_no_queue_wait() -> None:
    """0.3.64 stamps no extra_data.create_time: outcomes and run times still count, queue wait
    cannot be known (docs/comfyui-versions.md)."""
    items = history_items("success_with_client_id", "0.3.64")
    assert items
    for prompt_id, item in items.items():
        finished = parse_history_item(prompt_id, item, 0.0)
        assert finished.created_at is None
        assert finished.started_at is not None and finished.ended_at is not None


@pytest.mark.parametrize(
    ("status_str", "outcome"),
    [("cancelled", "interrupted"), ("canceled", "interrupted"), ("interrupted", "interrupted")],
)
def test_a_cancel_spelled_out_in_status_str_is_never_a_failure(status_str: str, outcome: str) -> None:
    item = {"status": {"status_str": status_str, "completed": False, "messages": []}, "prompt": []}
    finished = parse_history_item("p", item, 0.0)
    assert finished.outcome.value == outcome
    assert finished.failure is None


def test_an_execution_cancelled_message_is_an_interruption() -> None:
    messages = [
        ["execution_start", {"prompt_id": "p", "timestamp": 1000}],
        ["execution_cancelled", {"prompt_id": "p", "timestamp": 3000}],
    ]
    item = {"status": {"status_str": "error", "completed": False, "messages": messages}, "prompt": []}
    finished = parse_history_item("p", item, 0.0)
    assert finished.outcome.value == "interrupted"
    assert finished.failure is None
    assert finished.ended_at == 3.0


def test_cancelled_jobs_are_not_queue_state() -> None:
    """0.38's /api/jobs: finished jobs (cancelled included) never become running/pending."""
    from comfyui_exporter.model.parsers import parse_jobs_queue

    body = {
        "jobs": [
            {"id": "a", "status": "cancelled", "create_time": 1},
            {"id": "b", "status": "in_progress", "create_time": 2},
            {"id": "c", "status": "pending", "create_time": 3},
        ]
    }
    snap = parse_jobs_queue(body, 0.0)
    assert [j.prompt_id for j in snap.running] == ["b"]
    assert [j.prompt_id for j in snap.pending] == ["c"]
