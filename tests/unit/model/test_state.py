"""The reducer: queue ages, progress, restarts, bounded labels and the failure ring."""

from __future__ import annotations

from comfyui_exporter.model.events import (
    ErrorType,
    FailureDetail,
    Outcome,
    ProgressSeen,
    PromptFinished,
    QueueJob,
    QueueRemaining,
    QueueSnapshot,
    RequestObserved,
    RestartDetected,
    WebsocketState,
)
from comfyui_exporter.model.state import (
    MAX_NODE_FAILURE_SERIES,
    MAX_NODE_TYPES,
    RECENT_FAILURES,
    InstanceState,
)


def failed(prompt_id: str, node_type: str = "KSampler", error: ErrorType = ErrorType.OOM, at: float = 10.0):
    return PromptFinished(
        at=at,
        prompt_id=prompt_id,
        outcome=Outcome.ERROR,
        started_at=at - 2,
        ended_at=at,
        created_at=at - 3,
        failure=FailureDetail("2", node_type, "torch.OutOfMemoryError", "CUDA out of memory", error),
    )


def test_error_types_exist_at_zero_before_any_failure() -> None:
    state = InstanceState("a")
    assert state.failures == {e.value: 0 for e in ErrorType}
    state.apply(failed("p1"))
    assert state.failures["oom"] == 1 and state.failures["cuda_error"] == 0
    assert state.last_failure["oom"] == 10.0


def test_running_and_pending_ages_and_progress() -> None:
    state = InstanceState("a")
    state.apply(ProgressSeen(at=99.0, prompt_id="r"))
    state.apply(QueueSnapshot(at=100.0, running=(QueueJob("r", 95.0),), pending=(QueueJob("p", 90.0),)))
    assert state.running_age(110.0) == 11.0  # progress at 99 revealed the start before the snapshot
    assert state.oldest_pending_age(110.0) == 20.0
    assert state.progress_age(110.0) == 11.0
    state.apply(ProgressSeen(at=108.0, prompt_id="r"))
    assert state.progress_age(110.0) == 2.0
    state.apply(QueueSnapshot(at=120.0, running=(QueueJob("r", 95.0),), pending=()))
    assert state.running_age(130.0) == 31.0  # the first sighting is kept across snapshots
    assert state.oldest_pending_age(130.0) == 0.0
    state.apply(QueueRemaining(at=131.0, remaining=0))
    assert state.running_age(140.0) == 0.0 and state.progress_age(140.0) is None


def test_progress_age_absent_without_progress_for_the_running_prompt() -> None:
    state = InstanceState("a")
    state.apply(ProgressSeen(at=1.0, prompt_id="other"))
    state.apply(QueueSnapshot(at=2.0, running=(QueueJob("r", 1.0),), pending=()))
    assert state.progress_age(5.0) is None


def test_finished_prompt_leaves_the_running_set() -> None:
    state = InstanceState("a")
    state.apply(QueueSnapshot(at=1.0, running=(QueueJob("p1", 0.5),), pending=()))
    state.apply(failed("p1"))
    assert state.running == {} and state.finished == 1
    assert state.execution["error"].count == 1 and state.queue_wait.count == 1


def test_node_and_exception_types_are_capped() -> None:
    state = InstanceState("a")
    for i in range(MAX_NODE_TYPES + 10):
        state.apply(failed(f"p{i}", node_type=f"Node{i}"))
    node_types = {key[0] for key in state.node_failures}
    assert len(node_types) == MAX_NODE_TYPES + 1 and "other" in node_types
    assert sum(state.node_failures.values()) == MAX_NODE_TYPES + 10


def test_failure_ring_is_bounded_and_keeps_the_newest() -> None:
    state = InstanceState("a")
    for i in range(RECENT_FAILURES + 5):
        state.apply(failed(f"p{i}"))
    assert len(state.recent_failures) == RECENT_FAILURES
    assert state.recent_failures[-1].prompt_id == f"p{RECENT_FAILURES + 4}"


def test_interrupt_is_not_a_failure() -> None:
    state = InstanceState("a")
    state.apply(PromptFinished(1.0, "i", Outcome.INTERRUPTED, 0.0, 1.0, 0.0))
    assert state.interrupted == 1 and sum(state.failures.values()) == 0


def test_restart_clears_the_queue_and_counts() -> None:
    state = InstanceState("a")
    state.apply(QueueSnapshot(at=1.0, running=(QueueJob("r", 0.5),), pending=(QueueJob("p", 0.2),)))
    state.apply(RestartDetected(at=2.0))
    assert state.restarts == 1 and not state.running and not state.pending


def test_up_follows_the_last_request_and_websocket_reconnects_count() -> None:
    state = InstanceState("a")
    state.apply(RequestObserved(1.0, "history", 0.01, True))
    assert state.up
    state.apply(RequestObserved(2.0, "jobs", 0.01, False))
    assert not state.up and state.request_failures == {"history": 0, "jobs": 1}
    state.apply(WebsocketState(3.0, True))
    state.apply(WebsocketState(4.0, False))
    state.apply(WebsocketState(5.0, True, reconnect=True))
    assert state.websocket_connected and state.websocket_reconnects == 1


def test_node_failure_combinations_are_capped_too() -> None:
    state = InstanceState("a")
    n = 0
    for node in range(40):
        for exc in range(20):
            detail = FailureDetail("1", f"Node{node}", f"Exc{exc}", "boom", ErrorType.NODE_EXCEPTION)
            state.apply(PromptFinished(1.0, f"p{n}", Outcome.ERROR, 0.0, 1.0, 0.0, failure=detail))
            n += 1
    assert len(state.node_failures) <= MAX_NODE_FAILURE_SERIES + len(ErrorType)
    assert sum(state.node_failures.values()) == n
    assert state.node_failures[("other", "node_exception", "other")] > 0
