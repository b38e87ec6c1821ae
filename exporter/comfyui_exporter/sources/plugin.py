"""Plugin source: the in-ComfyUI event stream, turned into the exporter's events.

History stays the single place where outcomes are counted (so nothing is counted twice): a
finish, a sequence gap or a boot-id change from the plugin only *triggers* an immediate history
catch-up. What history cannot tell — validation rejections, exact start times, progress of every
prompt, node timings, VRAM guard trips — becomes events here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..config.settings import InstanceConfig
from ..model import plugin_records as ps
from ..model.events import (
    Event,
    NodeExecuted,
    PluginState,
    ProgressSeen,
    PromptRejected,
    PromptStarted,
    VramGuardTripped,
)
from ..model.parsers import clean_id, clean_text
from .client import make_session
from .plugin_stream import PluginStreamClient

log = logging.getLogger(__name__)


class PluginSource:
    def __init__(
        self,
        instance: InstanceConfig,
        emit: Callable[[Event], None],
        on_change: Callable[[], None],
        on_restart: Callable[[], None],
        clock: Callable[[], float],
        token: str | None = None,
    ) -> None:
        self.client = PluginStreamClient(instance.url, token=token, session=make_session(instance))
        self._name = instance.name
        self._emit = emit
        self._on_change = on_change
        self._on_restart = on_restart
        self._clock = clock

    def run(self, stop: threading.Event) -> None:
        self.client.run(stop, self.handle)

    def handle(self, record: ps.Record) -> None:
        """Map one plugin record; also what the tests call directly."""
        at = self._clock()
        match record:
            case ps.PluginConnection(connected=connected, detail=detail):
                log.info("ComfyUI plugin on %s: %s", self._name, detail)
                self._emit(PluginState(at=at, connected=connected))
            case ps.PromptStarted(prompt_id=prompt_id, ts=ts):
                self._emit(PromptStarted(at=at, prompt_id=prompt_id, started_at=ts))
            case ps.PromptFinished():
                self._on_change()
            case ps.Progress(prompt_id=prompt_id):
                self._emit(ProgressSeen(at=at, prompt_id=prompt_id))
            case ps.NodeFinished(node_type=node_type, seconds=seconds):
                self._emit(NodeExecuted(at=at, node_type=node_type, seconds=seconds))
            case ps.PromptRejected():
                node = next((e for e in record.node_errors if e.reason == record.reason), None)
                self._emit(
                    PromptRejected(
                        at=at,
                        prompt_id=_opt_id(record.prompt_id),
                        reason=record.reason,
                        node_id=_opt_id(node.node_id if node else None),
                        node_type=_opt_id(record.node_type),
                        input_name=_opt_id(record.input_name),
                        message=clean_text(record.message),
                    )
                )
            case ps.VramGuardTrip():
                self._emit(
                    VramGuardTripped(
                        at=at,
                        prompt_id=_opt_id(record.prompt_id),
                        node_id=_opt_id(record.node_id),
                        action=record.action,
                        outcome=record.outcome,
                        free_bytes=record.free_bytes,
                        required_bytes=record.required_bytes,
                        message=clean_text(record.message or ""),
                    )
                )
            case ps.StreamReset():
                self._on_restart()
                self._on_change()
            case ps.StreamGap():
                self._on_change()
            case _:
                pass


def _opt_id(value: str | None) -> str | None:
    """Plugin text reaches /failures and chat: one line, no control characters."""
    return None if value is None else clean_id(value)
