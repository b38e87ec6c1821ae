"""The local notification log: where notifications go when no Slack (or no robot) is configured.

Alertmanager's Slack receiver (and the relay's placeholder target) post here; each notification
becomes a few readable lines in ``notifications.log``, so ``tail -f .stack/notifications.log`` shows
every alert a person would have been sent. It runs as a thread of the stack's own process, on
127.0.0.1 only, and answers the way Slack and a WeCom robot do (``ok`` / ``{"errcode": 0}``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def format_notification(path: str, body: Any) -> str:
    """Readable lines for one Slack payload or relay message; raw JSON for anything else."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("attachments"), list):
        for att in body["attachments"]:
            if isinstance(att, dict):
                lines.append(f"{stamp} {att.get('title') or att.get('fallback') or ''}".rstrip())
                lines += [f"    {line}" for line in str(att.get("text") or "").splitlines() if line.strip()]
    elif isinstance(body, dict) and isinstance(body.get("markdown"), dict):
        text = str(body["markdown"].get("content") or body["markdown"].get("text") or "")
        lines.append(f"{stamp} [relay] {text.splitlines()[0] if text else ''}")
        lines += [f"    {line}" for line in text.splitlines()[1:] if line.strip()]
    else:
        lines.append(f"{stamp} [{path}] {json.dumps(body, ensure_ascii=False)[:4000]}")
    return "\n".join(lines) + "\n"


class NotificationLog:
    """A loopback HTTP server appending every POST to ``path``."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> NotificationLog:
        log = self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                log.append(format_notification(self.path.split("?")[0], body))
                answer = b"ok" if self.path.startswith("/slack") else b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                answer = b"comfyui-exporter stack: local notification log\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="notification-log", daemon=True).start()
        return self

    def append(self, text: str) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(text)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
