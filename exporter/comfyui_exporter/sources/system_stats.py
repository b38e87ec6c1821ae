"""System stats source: versions and device memory, every 15 s by default."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..model.events import Event, MalformedMessage
from ..model.parsers import MalformedError, parse_system_stats
from .client import ComfyUIClient, PayloadError

log = logging.getLogger(__name__)


class SystemStatsSource:
    def __init__(self, client: ComfyUIClient, emit: Callable[[Event], None], clock: Callable[[], float]):
        self._client = client
        self._emit = emit
        self._clock = clock

    def poll(self) -> None:
        try:
            self._emit(
                parse_system_stats(self._client.get_json("/system_stats", "system_stats"), self._clock())
            )
        except (PayloadError, MalformedError) as exc:
            log.warning("system_stats response skipped: %s", exc)
            self._emit(MalformedMessage(at=self._clock(), source="system_stats"))
