"""When the watcher asks history, and for how many entries: only what the queue counts imply."""

from __future__ import annotations

from comfyui_exporter.config.settings import ExporterConfig, InstanceConfig
from comfyui_exporter.model.events import QueueRemaining
from comfyui_exporter.model.history_tracker import HistoryTracker
from comfyui_exporter.wiring.watcher import InstanceWatcher


class RecordingHistory:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, int]] = []

    def poll(self, idle: bool = False, expected_new: int = 0) -> None:
        self.calls.append((idle, expected_new))


class NoQueue:
    jobs_api = True

    def poll(self) -> None:
        pass


def watcher() -> tuple[InstanceWatcher, RecordingHistory]:
    instance = InstanceConfig("w", "http://127.0.0.1:9")
    w = InstanceWatcher(instance, ExporterConfig(instances=(instance,), plugin_enabled=False))
    history = RecordingHistory()
    w.history = history  # type: ignore[assignment]
    w.queue = NoQueue()  # type: ignore[assignment]
    return w, history


def statuses(w: InstanceWatcher, *counts: int) -> None:
    for n in counts:
        w._emit(QueueRemaining(at=0.0, remaining=n))


def test_enqueues_alone_do_not_poll_history() -> None:
    w, history = watcher()
    statuses(w, 0)  # the first status after connecting: nothing to compare with, so history is due
    w.poll_once()
    assert history.calls == [(False, 0)]
    history.calls.clear()
    statuses(w, 1, 2, 3)  # three enqueues
    w.poll_once()
    assert history.calls == []


def test_completions_implied_by_the_counts_size_the_request() -> None:
    w, history = watcher()
    statuses(w, 3)
    w.poll_once()
    history.calls.clear()
    statuses(w, 3, 2, 3, 1)  # dequeue (=), completion (-1), enqueue (+1), two completions (-2)
    w.poll_once()
    assert history.calls == [(False, 3)]
    w.poll_once()
    assert history.calls == [(False, 3)]  # nothing new since: no second request


def test_a_dequeue_alone_still_polls_history() -> None:
    """Equal counts can hide a completion racing an enqueue, so an unchanged count polls too."""
    w, history = watcher()
    statuses(w, 2)
    w.poll_once()
    history.calls.clear()
    statuses(w, 2)
    w.poll_once()
    assert history.calls == [(False, 0)]


def test_idle_safety_poll_always_asks_one_entry() -> None:
    w, history = watcher()
    w.poll_once()
    history.calls.clear()
    w.poll_once(idle=True)
    assert history.calls == [(True, 0)]


def test_request_size_is_completions_plus_one_known_entry() -> None:
    tracker = HistoryTracker(baseline_items=32, max_items=64)
    assert tracker.first_request_size(3) == 32  # before the baseline: the baseline window
    tracker.step([], 32, 0.0)
    assert tracker.first_request_size(None) == 1
    assert tracker.first_request_size(3) == 4
    assert tracker.first_request_size(500) == 64
    assert tracker.first_request_size(0) == 1  # no estimate: the last batch size (1 at start)
