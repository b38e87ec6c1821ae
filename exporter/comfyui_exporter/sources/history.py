"""History source: ``GET /history?max_items=N``, never the whole history."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..model.events import Event, MalformedMessage
from ..model.history_tracker import HistoryTracker
from ..model.parsers import MalformedError, parse_history, parse_history_item
from .client import ComfyUIClient, PayloadError

log = logging.getLogger(__name__)


class HistorySource:
    def __init__(
        self,
        client: ComfyUIClient,
        tracker: HistoryTracker,
        emit: Callable[[Event], None],
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self.tracker = tracker
        self._emit = emit
        self._clock = clock

    def poll(self, idle: bool = False, expected_new: int = 0) -> None:
        """One catch-up. The idle safety poll asks for 1 entry; a triggered poll for the completions
        the queue counts imply plus one entry it already knows (the proof that nothing is missing),
        or for the last batch size when it has no estimate.

        Raises ``RequestFailed`` when ComfyUI cannot be reached (the caller marks the connection lost).
        """
        n = self.tracker.first_request_size(None if idle else expected_new)
        while True:
            try:
                entries = parse_history(self._client.get_json("/history", "history", params={"max_items": n}))
            except (PayloadError, MalformedError) as exc:
                log.warning("history response skipped: %s", exc)
                self._emit(MalformedMessage(at=self._clock(), source="history"))
                return
            step = self.tracker.step(entries, n, self._clock())
            if step.more is None:
                break
            n = step.more
        for event in step.events:
            self._emit(event)
        at = self._clock()
        for prompt_id, item in step.new:
            try:
                self._emit(parse_history_item(prompt_id, item, at))
            except MalformedError as exc:
                log.warning("history entry %r skipped: %s", prompt_id, exc)
                self._emit(MalformedMessage(at=at, source="history"))
