"""Websocket source: a passive client whose ``status`` broadcasts say *when* to poll.

The exporter never learns outcomes here: ComfyUI sends execution events only to the submitter's
socket. It uses its own random clientId, because a second socket with another client's id takes
that client's events away (and both lose everything when either closes). Binary frames (previews,
node text) are dropped without decoding. Any drop is followed by a reconnect with exponential
backoff and jitter, and every (re)connect triggers a catch-up poll for what was missed meanwhile.
"""

from __future__ import annotations

import logging
import random
import secrets
import ssl
import threading
from collections.abc import Callable

from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.sync.client import connect

from ..config.settings import InstanceConfig
from ..model.events import Event, MalformedMessage, WebsocketState
from ..model.parsers import MalformedError, parse_ws_text

log = logging.getLogger(__name__)

BACKOFF_START = 0.5
BACKOFF_CAP = 30.0


def new_client_id() -> str:
    return f"comfyui-exporter-{secrets.token_hex(8)}"


def backoff_delays(rng: random.Random, start: float = BACKOFF_START, cap: float = BACKOFF_CAP):  # type: ignore[no-untyped-def]
    """Exponential backoff with full jitter in its upper half, so fleets do not reconnect in lockstep."""
    delay = start
    while True:
        yield delay / 2 + rng.random() * delay / 2
        delay = min(delay * 2, cap)


class WebsocketSource:
    def __init__(
        self,
        instance: InstanceConfig,
        emit: Callable[[Event], None],
        on_change: Callable[[], None],
        on_disconnect: Callable[[], None],
        clock: Callable[[], float],
        max_message_bytes: int = 64 * 1024 * 1024,
        client_id: str | None = None,
    ) -> None:
        self.client_id = client_id or new_client_id()
        self._instance = instance
        self._emit = emit
        self._on_change = on_change
        self._on_disconnect = on_disconnect
        self._clock = clock
        self._max_message_bytes = max_message_bytes
        self._ssl: ssl.SSLContext | None = (
            instance.tls.ssl_context() if instance.ws_url.startswith("wss://") else None
        )

    def run(self, stop: threading.Event) -> None:
        connected_before = False
        delays = backoff_delays(random.Random())
        url = f"{self._instance.ws_url}?clientId={self.client_id}"
        while not stop.is_set():
            try:
                with connect(
                    url,
                    additional_headers=self._instance.headers,
                    ssl=self._ssl,
                    max_size=self._max_message_bytes,
                    open_timeout=5,
                    close_timeout=1,
                    user_agent_header="comfyui-exporter",
                ) as ws:
                    self._emit(WebsocketState(at=self._clock(), connected=True, reconnect=connected_before))
                    if connected_before:
                        log.info("websocket to %s reconnected", self._instance.name)
                    connected_before = True
                    delays = backoff_delays(random.Random())
                    self._on_change()  # catch up on whatever happened while we were away
                    self._receive(ws, stop)
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
                log.debug("websocket to %s: %s", self._instance.name, type(exc).__name__)
            self._emit(WebsocketState(at=self._clock(), connected=False))
            if stop.is_set():
                return
            self._on_disconnect()
            stop.wait(next(delays))

    def _receive(self, ws, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
        while not stop.is_set():
            try:
                message = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                continue  # previews and node text: nothing a monitor needs
            try:
                events, changed = parse_ws_text(message, self._clock())
            except MalformedError as exc:
                log.debug("websocket message skipped: %s", exc)
                self._emit(MalformedMessage(at=self._clock(), source="websocket"))
                continue
            for event in events:
                self._emit(event)
            if changed:
                self._on_change()
