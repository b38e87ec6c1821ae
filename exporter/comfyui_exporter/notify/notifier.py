"""The event path's face for the wiring: records that the state just counted in, alerts out.

Called on the thread that applied the event (poll or plugin thread); it only builds dicts and
appends them to the sender's queues, so counting a failure never waits on Alertmanager.
"""

from __future__ import annotations

import threading

from ..config.settings import ExporterConfig
from ..model.events import Event, Outcome, PromptFinished, PromptRejected, Reconnected, RestartDetected
from ..model.state import InstanceState
from .alerts import AlertBuilder
from .sender import AlertSender


class EventNotifier:
    def __init__(self, config: ExporterConfig, sender: AlertSender | None = None) -> None:
        am = config.alertmanager
        self.builder = AlertBuilder(
            config.public_url, ttl=am.event_ttl, cooldown=am.cooldown, extra_labels=am.labels
        )
        self.sender = sender or AlertSender(am)
        self._lock = threading.Lock()  # one builder for every instance's threads

    @staticmethod
    def wants(event: Event) -> bool:
        return isinstance(event, PromptFinished | PromptRejected | RestartDetected | Reconnected)

    def after(self, state: InstanceState, event: Event) -> None:
        """``state`` has just applied ``event`` (the caller holds the instance's lock)."""
        alert = None
        match event:
            case PromptFinished(outcome=Outcome.ERROR, failure=failure) if failure is not None:
                record = state.recent_failures[-1] if state.recent_failures else None
                if record is not None and record.kind == "failure":
                    with self._lock:
                        alert = self.builder.failure(record, event.at)
            case PromptRejected():
                record = state.recent_failures[-1] if state.recent_failures else None
                if record is not None and record.kind == "rejection":
                    with self._lock:
                        alert = self.builder.failure(record, event.at)
            case RestartDetected(at=at) | Reconnected(at=at):
                lost = state.last_lost
                if lost is not None and lost.at == at:
                    with self._lock:
                        alert = self.builder.lost(state.name, at, list(lost.running), list(lost.pending))
            case _:
                pass
        if alert is not None:
            self.sender.submit([alert])

    def start(self) -> None:
        self.sender.start()

    def stop(self, timeout: float = 0.5) -> None:
        self.sender.stop(timeout)
