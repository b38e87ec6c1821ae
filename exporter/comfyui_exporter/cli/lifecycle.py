"""SIGHUP reload and the signal loop: re-read flags, environment and ``--config`` without a restart.

A reload must not cost what a restart costs: counters going back to zero, a new history baseline
(which hides failures that finish in between), /failures emptied. So an instance whose URL is the
same keeps its state: for a new header (a rotated token) or TLS setting its watcher is rebuilt
around the same state and history tracker; for new poll settings the running watchers are updated
in place. Only a new URL means a new ComfyUI, watched from scratch. Settings that are fixed at start
(listen address, web config path, GPU collector) are reported as needing a restart and left as they
are. A reload that fails validation changes nothing (the error is logged).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import queue
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.settings import ConfigError, ExporterConfig

if TYPE_CHECKING:
    from ..wiring.app import Exporter
    from ..wiring.watcher import InstanceWatcher

log = logging.getLogger("comfyui_exporter")

# Read by running watchers on every loop (or settable on their client/tracker): applied in place.
IN_PLACE = (
    "poll_interval",
    "debounce",
    "system_stats_interval",
    "request_timeout",
    "history_max_items",
    "max_response_bytes",
    "history_baseline_items",
    "failures_enabled",
)
# Everything else (listen address, web config path, GPU collector, plugin settings, …) is fixed
# when the process starts: a change is reported as needing a restart.


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload changes, worked out before anything is touched."""

    config: ExporterConfig  # the new configuration
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    url_changed: tuple[str, ...] = ()  # same name, other URL: a different ComfyUI, watched afresh
    reconnect: tuple[str, ...] = ()  # headers, TLS or GPU pin changed: state is kept
    settings: tuple[str, ...] = ()  # global settings applied in place
    needs_restart: tuple[str, ...] = ()  # changed, but only a restart applies them
    log_level: str | None = None
    log_format: str | None = None

    @property
    def changes_anything(self) -> bool:
        return bool(self.added or self.removed or self.url_changed or self.reconnect or self.settings)

    def describe(self) -> str:
        """One log line, e.g. ``added gpu2; removed gpu1; settings poll_interval``."""
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("new URL for", self.url_changed),
                ("reconnecting", self.reconnect),
                ("settings", self.settings),
                ("NOT applied until a restart:", self.needs_restart),
            )
            if names
        ]
        return "; ".join(parts) or "nothing changed"


def plan_reload(current: ExporterConfig, new: ExporterConfig) -> ReloadPlan:
    """The difference between the running configuration and a freshly parsed one."""
    old_by_name = {i.name: i for i in current.instances}
    new_by_name = {i.name: i for i in new.instances}
    url_changed, reconnect = [], []
    for name in old_by_name.keys() & new_by_name.keys():
        old, fresh = old_by_name[name], new_by_name[name]
        if old.url != fresh.url:
            url_changed.append(name)
        elif (old.headers, old.tls, old.gpu_uuid) != (fresh.headers, fresh.tls, fresh.gpu_uuid):
            reconnect.append(name)
    changed = [
        f.name for f in dataclasses.fields(ExporterConfig) if getattr(current, f.name) != getattr(new, f.name)
    ]
    return ReloadPlan(
        config=new,
        added=tuple(n for n in new_by_name if n not in old_by_name),
        removed=tuple(n for n in old_by_name if n not in new_by_name),
        url_changed=tuple(sorted(url_changed)),
        reconnect=tuple(sorted(reconnect)),
        settings=tuple(f for f in changed if f in IN_PLACE),
        needs_restart=tuple(f for f in changed if f not in IN_PLACE and f != "instances"),
    )


def reload_config(
    argv: Sequence[str], current: ExporterConfig, environ: Mapping[str, str] | None = None
) -> ReloadPlan:
    """Parse flags + environment + config file again and plan the change; ``ConfigError`` if invalid."""
    from ..config.args import parse_config

    new, args = parse_config(list(argv), dict(environ) if environ is not None else None)
    plan = plan_reload(current, new)
    return dataclasses.replace(plan, log_level=args.log_level, log_format=args.log_format)


def apply_reload(exporter: Exporter, plan: ReloadPlan) -> None:
    """Make the running exporter match ``plan.config`` (see the module docstring for what is kept)."""
    from ..wiring.watcher import InstanceWatcher

    new = plan.config
    settings = {f: getattr(new, f) for f in IN_PLACE if hasattr(new, f)}
    # What now runs: the new instances and in-place settings; restart-only fields stay as started.
    effective = dataclasses.replace(exporter.config, instances=new.instances, **settings)
    by_name = {w.name: w for w in exporter.watchers}
    adopt = set()
    for name in (*plan.removed, *plan.url_changed, *plan.reconnect):
        old = by_name[name]
        # A poll still in flight would feed the old tracker after its state moved on: wait for it.
        old.stop(timeout=effective.request_timeout + 1.0 if name in plan.reconnect else 1.5)
        if name in plan.reconnect:
            if any(t.is_alive() for t in getattr(old, "_threads", [])):
                log.warning("reload: %s did not stop in time; it starts afresh (counters reset)", name)
            else:
                adopt.add(name)
    watchers: list[InstanceWatcher] = []
    for instance in new.instances:
        old = by_name.get(instance.name)
        if old is not None and instance.name not in (*plan.url_changed, *plan.reconnect):
            _update_in_place(old, effective)
            watchers.append(old)
            continue
        watcher = InstanceWatcher(instance, effective)
        if old is not None and instance.name in adopt:
            _adopt_state(watcher, old)
        watcher.start()
        watchers.append(watcher)
    exporter.watchers = watchers  # one assignment: a scrape sees the old list or the new one
    exporter.config = effective
    if exporter.server is not None and "failures_enabled" in plan.settings:
        exporter.server.failures = exporter.failures if effective.failures_enabled else None
    if plan.needs_restart:
        log.warning("reload: %s changed; that takes a restart", ", ".join(plan.needs_restart))


def _update_in_place(watcher: InstanceWatcher, config: ExporterConfig) -> None:
    """New poll settings for a running watcher: its loop reads ``config`` on every iteration."""
    watcher.config = config
    watcher.client.timeout = config.request_timeout
    watcher.client.max_response_bytes = config.max_response_bytes
    watcher.tracker.max_items = config.history_max_items
    watcher._changed.set()  # wake the loop so a shorter interval applies now, not after the old one


def _adopt_state(watcher: InstanceWatcher, old: InstanceWatcher) -> None:
    """Carry counters, /failures and the history tracker over to the rebuilt watcher: no new baseline.

    The tracker's *contents* are copied into the new watcher's tracker object, because its sources
    (history, websocket, plugin) already hold references to that object.
    """
    watcher.instance = old.instance
    vars(watcher.tracker).update(vars(old.tracker))
    watcher.tracker.connection_lost()  # prove on the next poll that nothing was missed meanwhile


def run_until_stopped(
    exporter: Exporter,
    reload: Callable[[], None],
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
) -> int:
    """Block in the main thread: SIGTERM/SIGINT stop the exporter, SIGHUP calls ``reload``.

    The handler only puts the signal on a ``SimpleQueue``, whose ``put`` is reentrant: a
    ``threading.Event`` set from a handler deadlocks when the signal lands while the main thread
    holds the Event's lock (Ctrl-C to a process group and a SIGTERM right after did hang it).
    """
    received: queue.SimpleQueue[int] = queue.SimpleQueue()

    def handler(signum: int, _frame: Any) -> None:
        received.put(signum)

    for signum in (*signals, signal.SIGHUP):
        signal.signal(signum, handler)
    while True:
        signum = _next_signal(received)
        if signum is not None:
            if signum == signal.SIGHUP:
                log.info("received SIGHUP, reloading the configuration")
                try:
                    reload()
                except Exception:  # a bug in a reload must not take the running exporter down
                    log.exception("reload failed; the exporter keeps running as it was")
            else:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                exporter.stop()
                return 0


def _next_signal(received: queue.SimpleQueue[int]) -> int | None:
    """The next signal; a timeout keeps the main thread where Python runs signal handlers."""
    try:
        return received.get(timeout=1.0)
    except queue.Empty:
        return None


def make_reloader(exporter: Exporter, argv: Sequence[str], args: argparse.Namespace) -> Callable[[], None]:
    """The ``reload`` for :func:`run_until_stopped`: config, log settings and the web config file."""
    from .logging_setup import setup_logging

    state = {"level": args.log_level, "format": args.log_format}

    def reload() -> None:
        try:
            plan = reload_config(argv, exporter.config)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        if (plan.log_level, plan.log_format) != (state["level"], state["format"]):
            setup_logging(plan.log_level or "info", plan.log_format or "text")
            state.update(level=plan.log_level, format=plan.log_format)
        apply_reload(exporter, plan)
        web = getattr(exporter, "web", None)
        if web is not None:
            web.check()
        log.info("configuration reloaded: %s", plan.describe())

    return reload
