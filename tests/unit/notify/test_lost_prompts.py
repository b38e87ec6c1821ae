"""Prompts lost to a restart: counted by state (running/pending) and turned into one event alert."""

from __future__ import annotations

import time

from comfyui_exporter.config.args import parse_config
from comfyui_exporter.model.events import QueueJob, QueueRemaining, QueueSnapshot, RestartDetected
from comfyui_exporter.model.state import InstanceState
from comfyui_exporter.notify.notifier import EventNotifier
from tests.support.sinks import HTTPSink
from tests.support.stack import wait_until


def _snapshot(at: float, running: list[str], pending: list[str]) -> QueueSnapshot:
    return QueueSnapshot(
        at=at,
        running=tuple(QueueJob(p, None) for p in running),
        pending=tuple(QueueJob(p, at) for p in pending),
    )


def test_counts_start_at_zero_and_a_restart_counts_what_was_queued() -> None:
    state = InstanceState("gpu0")
    assert state.lost == {"running": 0, "pending": 0}
    state.apply(_snapshot(10, ["run1"], ["p1", "p2"]))
    state.apply(RestartDetected(at=20))
    assert state.lost == {"running": 1, "pending": 2}
    assert state.last_lost is not None and state.last_lost.running == ("run1",)
    state.apply(RestartDetected(at=30))  # nothing queued any more: nothing more lost
    assert state.lost == {"running": 1, "pending": 2} and state.last_lost.at == 20


def test_a_reconnect_that_shows_an_empty_queue_before_the_restart_is_detected_still_counts() -> None:
    """The restarted ComfyUI's first status says queue_remaining 0 before history proves the restart."""
    state = InstanceState("gpu0")
    state.apply(_snapshot(10, ["run1"], []))
    state.apply(QueueRemaining(at=15, remaining=0))
    state.apply(RestartDetected(at=16))
    assert state.lost == {"running": 1, "pending": 0}


def test_notifier_sends_the_lost_prompt_alert_only_when_something_was_lost() -> None:
    with HTTPSink() as am:
        config, _ = parse_config(["--alertmanager.url", am.url], environ={})
        notifier = EventNotifier(config)
        notifier.start()
        try:
            state = InstanceState("gpu0")
            for event in (_snapshot(10, ["run1"], ["p1"]), RestartDetected(at=20), RestartDetected(at=40)):
                state.apply(event)
                notifier.after(state, event)
            wait_until(lambda: am.requests(), 10, what="the lost-prompt alert")
            time.sleep(0.3)
            (request,) = am.requests("/api/v2/alerts")
            (alert,) = request.json
        finally:
            notifier.stop()
    assert alert["labels"]["alertname"] == "ComfyUIPromptsLost"
    assert alert["annotations"]["prompt_ids"] == "run1,p1"


def test_an_outage_with_an_empty_history_counts_what_vanished_across_it() -> None:
    """No history entry before the crash: /history cannot prove the restart, the queue can."""
    from comfyui_exporter.model.events import Reconnected, RequestObserved

    state = InstanceState("gpu0")
    state.apply(_snapshot(10, ["run1"], ["p1"]))
    state.apply(QueueRemaining(at=11, remaining=3))  # not 0: nothing vanished yet
    state.apply(RequestObserved(20, "history", 0.01, False))
    state.apply(RequestObserved(25, "history", 0.01, True))
    state.apply(_snapshot(26, [], []))  # the restarted ComfyUI's queue
    state.apply(Reconnected(at=26))
    assert state.lost == {"running": 1, "pending": 1}
    # a normal completion across a short blip is not lost: its history entry removes it
    state.apply(_snapshot(30, ["run2"], []))
    state.apply(RequestObserved(31, "history", 0.01, False))
    state.apply(_snapshot(33, [], []))
    from comfyui_exporter.model.events import Outcome, PromptFinished

    state.apply(PromptFinished(33, "run2", Outcome.SUCCESS, 30, 32, 29))
    state.apply(Reconnected(at=33))
    assert state.lost == {"running": 1, "pending": 1}


def test_a_plugin_rejection_becomes_a_rejected_event_alert() -> None:
    from comfyui_exporter.model.events import PromptRejected

    with HTTPSink() as am:
        config, _ = parse_config(["--alertmanager.url", am.url], environ={})
        notifier = EventNotifier(config)
        notifier.start()
        try:
            state = InstanceState("gpu0")
            event = PromptRejected(
                50.0, "r1", "value_not_in_list", "4", "CheckpointLoaderSimple", "ckpt_name", "x not in []"
            )
            state.apply(event)
            notifier.after(state, event)
            wait_until(lambda: am.requests(), 10, what="the rejection alert")
            (alert,) = am.requests("/api/v2/alerts")[0].json
        finally:
            notifier.stop()
    assert alert["labels"]["alertname"] == "ComfyUIPromptRejected"
    assert (alert["labels"]["reason"], alert["annotations"]["prompt_id"]) == ("value_not_in_list", "r1")
