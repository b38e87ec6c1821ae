"""A passive websocket that counts what ComfyUI sends to one monitoring socket.

Why: the exporter's websocket costs ComfyUI one more JSON send per broadcast (status, and progress
of prompts without client_id), which ``/_sim/stats`` does not record. A second passive socket with
its own clientId receives exactly what the exporter's socket receives, so its byte count is the
exporter's websocket cost, charged to the exporter in section 1.
"""

from __future__ import annotations

import secrets
import threading

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


class WsByteCounter:
    def __init__(self, ws_url: str) -> None:
        self.url = f"{ws_url}?clientId=bench-wscount-{secrets.token_hex(6)}"
        self.bytes = 0
        self.frames = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wscount", daemon=True)

    def start(self, timeout: float = 10.0) -> WsByteCounter:
        self._thread.start()
        self._connected.wait(timeout)
        return self

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.bytes, self.frames

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(self.url, max_size=None, open_timeout=5, close_timeout=1) as ws:
                    self._connected.set()
                    while not self._stop.is_set():
                        try:
                            message = ws.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        size = len(message.encode()) if isinstance(message, str) else len(message)
                        with self._lock:
                            self.bytes += size
                            self.frames += 1
            except (OSError, TimeoutError, WebSocketException):
                self._stop.wait(0.2)
