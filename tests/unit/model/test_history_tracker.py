"""The new-entry decision: baseline, windows that double, deletions, wipes, restarts and gaps."""

from __future__ import annotations

from comfyui_exporter.model.events import HistoryBaseline, HistoryGap, RestartDetected
from comfyui_exporter.model.history_tracker import HistoryTracker


class FakeHistory:
    """ComfyUI's history semantics: append on completion, newest-N windows, deletions, wipes."""

    def __init__(self, ids: list[str] | None = None) -> None:
        self.ids: list[str] = []
        self.ends: dict[str, int] = {}
        self.clock = 1_000
        self.requests: list[int] = []
        self.add(*(ids or []))

    def add(self, *ids: str) -> None:
        for prompt_id in ids:
            self.clock += 10
            self.ids.append(prompt_id)
            self.ends[prompt_id] = self.clock

    def window(self, n: int) -> list[tuple[str, dict]]:
        self.requests.append(n)
        return [(i, _item(self.ends[i])) for i in self.ids[-n:]] if n else []


def _item(end_ms: int) -> dict:
    return {"status": {"messages": [["execution_success", {"timestamp": end_ms}]]}}


def poll(tracker: HistoryTracker, history: FakeHistory, idle: bool = False):
    n = 1 if idle and tracker.baseline_done else tracker.first_request_size()
    while True:
        step = tracker.step(history.window(n), n, 0.0)
        if step.more is None:
            return [i for i, _ in step.new], step.events
        n = step.more


def test_baseline_counts_nothing_and_later_entries_count_once() -> None:
    history = FakeHistory(["a", "b", "c"])
    tracker = HistoryTracker(baseline_items=2, max_items=64)
    new, events = poll(tracker, history)
    assert new == [] and isinstance(events[0], HistoryBaseline)
    history.add("d", "e")
    assert poll(tracker, history)[0] == ["d", "e"]
    assert poll(tracker, history)[0] == []
    assert poll(tracker, history, idle=True)[0] == []
    assert history.requests[-1] == 1  # idle safety poll asks for one entry


def test_window_doubles_until_a_known_entry_appears() -> None:
    history = FakeHistory(["a"])
    tracker = HistoryTracker(baseline_items=1, max_items=64)
    poll(tracker, history)
    history.add(*[f"n{i}" for i in range(10)])
    history.requests.clear()
    new, events = poll(tracker, history, idle=True)
    assert new == [f"n{i}" for i in range(10)]
    assert history.requests == [1, 2, 4, 8, 16]
    assert events == []


def test_gap_counted_when_the_cap_is_reached() -> None:
    history = FakeHistory(["a"])
    tracker = HistoryTracker(baseline_items=1, max_items=8)
    poll(tracker, history)
    history.add(*[f"n{i}" for i in range(20)])
    new, events = poll(tracker, history)
    assert len(new) == 8 and any(isinstance(e, HistoryGap) for e in events)


def test_deleting_the_newest_entry_does_not_resurrect_older_ones() -> None:
    history = FakeHistory(["a", "b", "c", "d"])
    tracker = HistoryTracker(baseline_items=2, max_items=64)
    poll(tracker, history)  # knows c, d
    history.ids.remove("d")
    assert poll(tracker, history, idle=True)[0] == []  # c is known; b is older than c
    history.ids.remove("c")
    new, events = poll(tracker, history, idle=True)
    # No known entry is left, but a and b ended before the newest entry we knew: old, not news.
    assert new == []
    assert not any(isinstance(e, RestartDetected) for e in events)
    history.add("e")
    assert poll(tracker, history)[0] == ["e"]


def test_wipe_without_connection_loss_is_not_a_restart_and_new_entries_count() -> None:
    history = FakeHistory(["a", "b"])
    tracker = HistoryTracker(baseline_items=8, max_items=64)
    poll(tracker, history)
    history.ids = []
    assert poll(tracker, history) == ([], [])
    history.add("x", "y")
    assert poll(tracker, history)[0] == ["x", "y"]


def test_restart_detected_after_connection_loss_and_post_restart_entries_count() -> None:
    history = FakeHistory(["a", "b"])
    tracker = HistoryTracker(baseline_items=8, max_items=64)
    poll(tracker, history)
    tracker.connection_lost()
    history.ids = []
    history.add("x")  # new process: history starts empty; x finished before our first poll
    new, events = poll(tracker, history)
    assert new == ["x"]
    assert [type(e) for e in events] == [RestartDetected]
    tracker.connection_lost()  # a blip with history intact is not a restart
    history.add("y")
    new, events = poll(tracker, history)
    assert new == ["y"] and events == []


def test_memory_is_bounded() -> None:
    tracker = HistoryTracker(baseline_items=1, max_items=4, memory=50)
    history = FakeHistory(["a"])
    poll(tracker, history)
    for i in range(500):
        history.add(f"p{i}")
        assert poll(tracker, history)[0] == [f"p{i}"]
    assert len(tracker._seen) <= 50
