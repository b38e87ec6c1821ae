"""Client for the optional in-ComfyUI plugin's event stream (``GET /comfyui-exporter/v1/events``).

The plugin sees what no HTTP poll or websocket can: validation rejections, exact start times,
progress of every prompt, per-node timings and VRAM guard trips. The records and their parser are
``model.plugin_records``; this module is the transport and the ordering:

- ``StreamCursor`` follows ``boot_id``/``seq`` and inserts ``StreamReset`` (ComfyUI restarted) and
  ``StreamGap`` (events lost, e.g. ring overflow), so the exporter runs its history catch-up.
- ``PluginStreamClient.run(stop_event, on_event)`` is the blocking long-poll loop for a thread;
  ``PluginConnection`` records report detection (404 = absent) and connection changes. On first
  contact it starts at the newest event: older ones predate this exporter run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ..model.plugin_records import (
    Malformed,
    ParseStats,
    PluginConnection,
    Record,
    StreamGap,
    StreamReset,
    event_seq,
    parse_event,
)

log = logging.getLogger(__name__)

EVENTS_PATH = "/comfyui-exporter/v1/events"


@dataclass
class StreamCursor:
    """Where the exporter stands in the plugin's stream; pure (no I/O), so it is easy to test."""

    boot_id: str | None = None
    last_seq: int = 0
    stats: ParseStats = field(default_factory=ParseStats)

    def params(self) -> dict[str, Any]:
        return {"after": self.last_seq, **({"boot": self.boot_id} if self.boot_id else {})}

    def start(self, payload: Any, replay: bool = False) -> None:
        """First contact: adopt the boot id; skip what happened before unless ``replay``."""
        boot, newest = _head(payload)
        self.boot_id, self.last_seq = boot, (0 if replay else newest)

    def advance(self, payload: Any) -> list[Record]:
        """Records of one response, with StreamReset / StreamGap inserted; raises Malformed."""
        boot, _newest = _head(payload)
        out: list[Record] = []
        if boot != self.boot_id:
            out.append(StreamReset(old_boot_id=self.boot_id, new_boot_id=boot))
            self.boot_id, self.last_seq = boot, 0
        for event in payload["events"]:
            seq = event_seq(event)
            if seq is None:
                self.stats.malformed += 1
                continue
            if seq <= self.last_seq:
                continue  # already delivered (or out of order): never deliver twice
            if seq > self.last_seq + 1:
                out.append(
                    StreamGap(
                        expected_seq=self.last_seq + 1, received_seq=seq, missed=seq - self.last_seq - 1
                    )
                )
            self.last_seq = seq
            record = parse_event(event, self.stats)
            if record is not None:
                out.append(record)
        return out


def _head(payload: Any) -> tuple[str, int]:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("events"), list):
        raise Malformed("payload without an events list")
    boot, newest = payload.get("boot_id"), payload.get("seq")
    if not (
        isinstance(boot, str)
        and boot
        and isinstance(newest, int)
        and not isinstance(newest, bool)
        and newest >= 0
    ):
        raise Malformed(f"boot_id={boot!r} seq={newest!r}")
    return boot, newest


class PluginStreamClient:
    """Blocking long-poll client; run it in its own thread with ``run(stop_event, on_event)``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        wait: float = 10.0,
        timeout: float = 5.0,
        limit: int = 500,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        absent_retry: float = 60.0,
        replay: bool = False,
        session: requests.Session | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + EVENTS_PATH
        self.wait, self.timeout, self.limit = wait, timeout, limit
        self.backoff, self.backoff_max = backoff, backoff_max
        self.absent_retry, self.replay = absent_retry, replay
        self.cursor = StreamCursor()
        self.state = PluginConnection(False, "not yet contacted")
        self._session = session or requests.Session()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def connected(self) -> bool:
        return self.state.connected

    @property
    def malformed_total(self) -> int:
        return self.cursor.stats.malformed

    def step(self) -> list[Record]:
        """One request. Before first contact it is the probe (404 = plugin absent) and starts the
        cursor; afterwards a long-poll from the cursor. Returns the records, preceded by a
        PluginConnection whenever the connection state changed. Never raises for I/O or bad data.
        """
        records: list[Record] = []
        first = self.cursor.boot_id is None
        try:
            params = (
                {"after": 0, "wait": 0, "limit": 0}
                if first
                else {**self.cursor.params(), "wait": self.wait, "limit": self.limit}
            )
            resp = self._session.get(
                self.url,
                params=params,
                headers=self._headers,
                timeout=(self.timeout, params["wait"] + self.timeout),
            )
            if resp.status_code != 200:
                state = _refused(resp)
            else:
                if first:
                    self.cursor.start(resp.json(), replay=self.replay)
                else:
                    records = self.cursor.advance(resp.json())
                state = PluginConnection(True, "connected")
        except ValueError as exc:  # JSON decoding and Malformed (requests' JSON error is one too)
            state = PluginConnection(False, f"bad response: {type(exc).__name__}")
        except requests.RequestException as exc:
            state = PluginConnection(False, f"unreachable: {type(exc).__name__}")
        if state != self.state:
            self.state = state
            return [state, *records]
        return records

    def run(self, stop_event: threading.Event, on_event: Callable[[Record], None]) -> None:
        """Detects, follows and reconnects (exponential backoff) until ``stop_event`` is set.

        After a lost connection it resumes from the cursor, so nothing is skipped silently: the
        plugin answers with the missed events, a StreamGap, or a StreamReset if ComfyUI restarted.
        Stop latency is at most ``wait + timeout`` seconds (a parked long-poll is not aborted).
        """
        delay = self.backoff
        while not stop_event.is_set():
            for record in self.step():
                try:
                    on_event(record)
                except Exception:  # the consumer's bug must not kill the stream
                    log.exception("plugin stream consumer failed on %r", record)
            if self.connected:
                delay = self.backoff
                continue
            absent = self.state.detail in ("absent", "unauthorized")
            stop_event.wait(self.absent_retry if absent else delay)
            delay = min(delay * 2, self.backoff_max)

    def close(self) -> None:
        self._session.close()


def _refused(resp: requests.Response) -> PluginConnection:
    detail = {404: "absent", 401: "unauthorized", 403: "unauthorized"}.get(resp.status_code)
    return PluginConnection(False, detail or f"bad response: HTTP {resp.status_code}")
