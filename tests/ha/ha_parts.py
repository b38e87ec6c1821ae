"""Pieces of the HA stack that the shared support modules do not have.

* :class:`RobotsThread`: the fake DingTalk robot (``comfyui_exporter.relay.testing.FakeRobots``,
  which checks the HMAC signature and the rate limits) on its own event loop in a thread, so that
  synchronous tests can read what it received while the stack runs.
* :class:`RelayProcess`: the real ``comfyui-alert-relay`` as a subprocess on a FIXED port, so that it
  can be stopped, killed and restarted where Alertmanager expects it.
* :class:`LossyLink`: an HTTP forwarder between the Alertmanagers and the relay. It passes every
  request through; when the relay is down it resets Alertmanager's connection (what a dead relay
  looks like from outside), and :meth:`LossyLink.drop_next_answer` lets one request reach the relay
  and then loses the relay's answer: the "delivered, but the 200 never came back" case that makes
  Alertmanager retry a notification that was already sent.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.binaries import REPO, wait_until

# ------------------------------------------------------------------------------------------ robots


class RobotsThread:
    """FakeRobots on a private event loop; ``dingtalk_url`` is a signed DingTalk robot."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-robots", daemon=True)
        self.robots: Any = None
        self.dingtalk_url = ""

    def start(self) -> RobotsThread:
        from comfyui_exporter.relay.testing import FakeRobots

        self._thread.start()

        async def boot() -> None:
            self.robots = FakeRobots()
            await self.robots.start()
            self.dingtalk_url = self.robots.dingtalk(secret=self.secret)

        asyncio.run_coroutine_threadsafe(boot(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self.robots is not None:
            asyncio.run_coroutine_threadsafe(self.robots.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def accepted(self) -> list[Any]:
        """Messages the robot accepted (valid signature, within rate), oldest first."""
        return [r for r in list(self.robots.received) if r.accepted]

    def rejected(self) -> list[Any]:
        return [r for r in list(self.robots.received) if not r.accepted]


# ------------------------------------------------------------------------------------------- relay


@dataclass
class RelayProcess:
    """The real relay (``python -m comfyui_exporter.relay``) on 127.0.0.1:``port``."""

    config_path: Path
    port: int
    log_path: Path
    journal_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RelayProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO / "exporter"), os.environ.get("PYTHONPATH")])
            ),
        }
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "comfyui_exporter.relay",
                    "--config",
                    str(self.config_path),
                    "--listen",
                    self.address,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the relay exited with {self.process.returncode}:\n{self.log()}")
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200

        wait_until(ready, 30, interval=0.05, what="the relay to be ready")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """The journal (JSON lines), optionally only one event kind (received, delivered, ...)."""
        if not self.journal_path.exists():
            return []
        lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if event is None or r.get("event") == event]


# -------------------------------------------------------------------------------------- lossy link


@dataclass
class LinkEvent:
    path: str
    outcome: str  # forwarded | refused | answer_dropped
    status: int
    at: float
    body: bytes = b""


@dataclass
class LossyLink:
    """Alertmanager → relay, one HTTP request per connection, with faults on demand."""

    upstream_port: int
    events: list[LinkEvent] = field(default_factory=list)
    _drop_paths: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> LossyLink:
        link = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: a drop loses exactly one

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", link.upstream_port, timeout=30)
                    conn.request("POST", self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    status, payload, ctype = answer.status, answer.read(), answer.getheader("Content-Type")
                    conn.close()
                except OSError:
                    link._note(self.path, "refused", 0, body)
                    self._reset()
                    return
                if link._take_drop(self.path):
                    link._note(self.path, "answer_dropped", status, body)
                    self._reset()
                    return
                link._note(self.path, "forwarded", status, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _reset(self) -> None:
                """Close with RST: the client sees a broken connection, no HTTP answer."""
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="lossy-link", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def drop_next_answer(self, path: str) -> None:
        """The next request to ``path`` reaches the relay; its answer is lost."""
        with self._lock:
            self._drop_paths.append(path)

    def _take_drop(self, path: str) -> bool:
        with self._lock:
            if path in self._drop_paths:
                self._drop_paths.remove(path)
                return True
            return False

    def _note(self, path: str, outcome: str, status: int, body: bytes) -> None:
        with self._lock:
            self.events.append(LinkEvent(path, outcome, status, time.time(), body))

    def seen(self, path: str, outcome: str, mentions: str = "") -> list[LinkEvent]:
        with self._lock:
            return [
                e
                for e in self.events
                if e.path == path and e.outcome == outcome and mentions.encode() in e.body
            ]
