"""Deciding which ``/history`` entries are new, from small windows of the newest entries.

ComfyUI appends history in completion order and only ever drops the oldest entry (or entries a
user deletes), so an entry that is newer than the newest entry we already know must be new, and an
unknown entry *older* than a known one existed before we looked. The poller therefore asks for the
newest N entries, starting small, and doubles N while none of the returned entries is known; when
it cannot find a known entry even at the cap, it counts a gap instead of guessing silently.
When no known entry is left at all (all deleted, wiped, or ComfyUI restarted), an unknown entry
that *ended before* the newest entry we ever knew is old (ComfyUI's own clock stamps both).

No I/O here: the poller feeds responses in and gets decisions out, which is what the tests drive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .events import Event, HistoryBaseline, HistoryGap, RestartDetected

Entry = tuple[str, dict[str, Any]]


@dataclass
class Step:
    """What to do after one response: fetch ``more`` entries, or count ``new`` (oldest first)."""

    more: int | None = None
    new: list[Entry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class HistoryTracker:
    def __init__(self, baseline_items: int = 32, max_items: int = 512, memory: int = 20_000) -> None:
        if baseline_items < 1 or max_items < 1:
            raise ValueError("baseline_items and max_items must be positive")
        self.baseline_items = baseline_items
        self.max_items = max_items
        self.memory = memory
        self.baseline_done = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        # True while some id we know may still be in ComfyUI's history (an anchor to search for).
        self._anchored = False
        self._connection_lost = False
        self._last_batch = 1
        self._newest_end_ms = 0.0

    def first_request_size(self, expected_new: int | None = 0) -> int:
        """How many entries to ask for first; ``None`` for the idle safety poll (one entry).

        With ``expected_new`` completions known from the queue counts, ask for those plus one known
        entry: a single request then both fetches the news and proves nothing is missing. Without
        an estimate, start near the size of the last batch.
        """
        if not self.baseline_done:
            return self.baseline_items
        if expected_new is None:
            return 1
        wanted = expected_new + 1 if expected_new > 0 else self._last_batch
        return max(1, min(self.max_items, wanted))

    def connection_lost(self) -> None:
        """ComfyUI was unreachable for a moment: a vanished history then means a restart."""
        self._connection_lost = True

    def step(self, entries: Sequence[Entry], requested: int, at: float) -> Step:
        if not self.baseline_done:
            return self._baseline(entries, at)
        if not entries:
            return Step(events=self._reset(at))
        ids = [prompt_id for prompt_id, _ in entries]
        known = [i for i, prompt_id in enumerate(ids) if prompt_id in self._seen]
        events: list[Event] = []
        if known:
            last_known = known[-1]
            older_unknown = [pid for pid in ids[:last_known] if pid not in self._seen]
            for prompt_id in older_unknown:  # existed before we looked (e.g. after a deletion)
                self._remember(prompt_id)
            new = [e for e in entries[last_known + 1 :] if e[0] not in self._seen]
        elif len(entries) < requested:
            # The whole history came back and none of it is known: it was wiped (or ComfyUI restarted).
            if self._anchored:
                events = self._reset(at)
            new = self._not_older_than_known(entries)
        elif requested < self.max_items:
            return Step(more=min(requested * 2, self.max_items))
        else:
            events = [HistoryGap(at=at)]
            new = self._not_older_than_known(entries)
        for prompt_id, _ in entries if not known else new:
            self._remember(prompt_id)
        self._note_ends(new)
        self._anchored = True
        self._connection_lost = False
        self._last_batch = max(1, len(new))
        return Step(new=new, events=events)

    def _not_older_than_known(self, entries: Sequence[Entry]) -> list[Entry]:
        return [e for e in entries if (_end_ms(e[1]) or float("inf")) >= self._newest_end_ms]

    def _note_ends(self, entries: Sequence[Entry]) -> None:
        for _, item in entries:
            end = _end_ms(item)
            if end is not None and end > self._newest_end_ms:
                self._newest_end_ms = end

    def _baseline(self, entries: Sequence[Entry], at: float) -> Step:
        for prompt_id, _ in entries:
            self._remember(prompt_id)
        self._note_ends(entries)
        self.baseline_done = True
        self._anchored = bool(entries)
        self._connection_lost = False
        return Step(events=[HistoryBaseline(at=at, prompt_ids=tuple(pid for pid, _ in entries))])

    def _reset(self, at: float) -> list[Event]:
        events: list[Event] = []
        if self._anchored and self._connection_lost:
            events.append(RestartDetected(at=at))
        self._anchored = False
        self._connection_lost = False
        return events

    def _remember(self, prompt_id: str) -> None:
        self._seen[prompt_id] = None
        self._seen.move_to_end(prompt_id)
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)


def _end_ms(item: dict[str, Any]) -> float | None:
    """Timestamp (ms) of an entry's last status message, if it has a usable one."""
    try:
        timestamp = item["status"]["messages"][-1][1]["timestamp"]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return None
    return float(timestamp)
