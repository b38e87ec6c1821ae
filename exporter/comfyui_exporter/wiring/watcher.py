"""One ComfyUI instance: its sources, its threads, and when each source is asked.

The websocket thread only listens. The poll thread sleeps until a ``status`` broadcast (or a
reconnect, or the plugin) says something changed, waits ``debounce`` (and at least
``min_poll_interval`` since the last poll) so a burst becomes one poll, then asks only what can
have changed: history when the queue count fell or stayed (a completion; a pure enqueue only raises
it), sized to the number of completions the counts imply plus one known entry; the queue when it is
not known to be empty. A safety poll every ``poll_interval`` catches what a dropped or missing
websocket would hide; idle, it costs ComfyUI a 1-entry history request. System stats are refreshed
on their own, slower interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..config.settings import ExporterConfig, InstanceConfig
from ..exposition.collector import Instance
from ..model.events import Event, QueueRemaining, Reconnected
from ..model.history_tracker import HistoryTracker
from ..model.state import InstanceState
from ..notify.notifier import EventNotifier
from ..sources.client import ComfyUIClient, RequestFailed
from ..sources.history import HistorySource
from ..sources.plugin import PluginSource
from ..sources.queue import QueueSource
from ..sources.system_stats import SystemStatsSource
from ..sources.websocket import WebsocketSource

log = logging.getLogger(__name__)


class InstanceWatcher:
    def __init__(
        self,
        instance_config: InstanceConfig,
        config: ExporterConfig,
        clock: Callable[[], float] = time.time,
        notifier: EventNotifier | None = None,
    ) -> None:
        self.notifier = notifier
        self.config = config
        self.instance_config = instance_config
        self.instance = Instance(InstanceState(instance_config.name))
        self._clock = clock
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._queue_remaining: int | None = None  # None: unknown (no websocket), so poll the queue
        self._history_due = True  # a completion may have happened since the last history poll
        self._completions = 0  # completions implied by falling queue counts since the last history poll
        self._last_poll = 0.0
        self._reachable: bool | None = None  # for one log line per change, not one per poll
        self.client = ComfyUIClient(
            instance_config,
            self._emit,
            timeout=config.request_timeout,
            max_response_bytes=config.max_response_bytes,
            clock=clock,
        )
        self.tracker = HistoryTracker(config.history_baseline_items, config.history_max_items)
        self.history = HistorySource(self.client, self.tracker, self._emit, clock)
        self.queue = QueueSource(self.client, self._emit, clock)
        self.system_stats = SystemStatsSource(self.client, self._emit, clock)
        self.websocket = WebsocketSource(
            instance_config,
            self._emit,
            on_change=self._changed.set,
            on_disconnect=self._disconnected,
            clock=clock,
            max_message_bytes=min(config.max_response_bytes, 64 * 1024 * 1024),
        )
        self.plugin: PluginSource | None = None
        if config.plugin_enabled:
            self.plugin = PluginSource(
                instance_config,
                self._emit,
                on_change=self.request_history,
                on_restart=self.tracker.connection_lost,
                clock=clock,
                token=config.plugin_token,
            )
        self._threads: list[threading.Thread] = []

    @property
    def name(self) -> str:
        return self.instance_config.name

    def _emit(self, event: Event) -> None:
        if isinstance(event, QueueRemaining):
            self._count_changed(event.remaining)
        if self.notifier is not None and self.notifier.wants(event):
            with self.instance.lock:  # apply and read what it counted together
                self.instance.state.apply(event)
                self.notifier.after(self.instance.state, event)
            return
        self.instance.apply(event)

    def _count_changed(self, remaining: int) -> None:
        """``queue_remaining`` = pending + running: +1 on enqueue, equal on dequeue, -1 on completion."""
        previous = self._queue_remaining
        if previous is None or remaining <= previous:
            self._history_due = True
            if previous is not None:
                self._completions += previous - remaining
        self._queue_remaining = remaining

    def request_history(self) -> None:
        """Something finished (plugin event, stream gap, reconnect): poll history now."""
        self._history_due = True
        self._changed.set()

    def _disconnected(self) -> None:
        self._queue_remaining = None
        self.tracker.connection_lost()
        self.request_history()

    def start(self) -> None:
        loops = [(self.websocket.run, "ws"), (lambda _stop: self._poll_loop(), "poll")]
        if self.plugin is not None:
            loops.append((self.plugin.run, "plugin"))
        for target, role in loops:
            thread = threading.Thread(
                target=target, args=(self._stop,), name=f"{role}:{self.name}", daemon=True
            )
            thread.start()
            # The plugin thread may sit in a long-poll: it is a daemon and not waited for at stop.
            if role != "plugin":
                self._threads.append(thread)

    def request_stop(self) -> None:
        self._stop.set()
        self._changed.set()

    def stop(self, timeout: float = 2.0) -> None:
        self.request_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.client.close()

    def _poll_loop(self) -> None:
        next_stats = 0.0
        while not self._stop.is_set():
            triggered = self._changed.wait(self.config.poll_interval)
            if self._stop.is_set():
                return
            if triggered:  # coalesce a burst of broadcasts into one poll, and never poll back to back
                since_last = time.monotonic() - self._last_poll
                self._stop.wait(max(self.config.debounce, self.config.min_poll_interval - since_last))
            self._changed.clear()
            stats_due = time.monotonic() >= next_stats
            if self.poll_once(idle=not triggered, system_stats=stats_due) and stats_due:
                next_stats = time.monotonic() + self.config.system_stats_interval

    def poll_once(self, idle: bool = False, system_stats: bool = False) -> bool:
        """One round of polling (also what tests drive directly); False when ComfyUI did not answer."""
        self._last_poll = time.monotonic()
        try:
            if system_stats:
                self.system_stats.poll()
            if idle or self._history_due:
                # Clear before polling: a broadcast that lands during the request sets it again.
                self._history_due = False
                completions, self._completions = self._completions, 0
                self.history.poll(idle=idle, expected_new=completions)
            if self._queue_remaining != 0:
                self.queue.poll()
        except RequestFailed as exc:
            if self._reachable is not False:
                log.warning(
                    "ComfyUI %s is unreachable (%s); retrying every %.0f s",
                    self.name,
                    exc,
                    self.config.poll_interval,
                )
            self._reachable = False
            self.tracker.connection_lost()
            self._history_due = True
            return False
        except Exception:  # a bug must not stop the loop: log it and keep watching
            log.exception("unexpected error while polling %s", self.name)
            return False
        if self._reachable is False:  # history and queue were just re-read: count what the outage lost
            self._emit(Reconnected(at=self._clock()))
        if self._reachable is not True:
            log.info(
                "ComfyUI %s is up: jobs API %s, websocket %s",
                self.name,
                {True: "available", False: "absent (ComfyUI < 0.6.0, using /queue)", None: "not probed yet"}[
                    self.queue.jobs_api
                ],
                "connected" if self.instance.state.websocket_connected else "not connected",
            )
        self._reachable = True
        return True
