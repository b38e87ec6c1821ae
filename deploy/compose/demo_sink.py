#!/usr/bin/env python3
"""A notification sink for the docker-compose demo: accepts any webhook POST and shows what arrived.

In the demo, Alertmanager's Slack receiver posts here (its api_url secret is http://demo-sink:8080/slack),
and the relay's chat robots can point here too; the answer satisfies Slack, DingTalk, WeCom and Feishu.

    docker compose --profile demo logs -f demo-sink     # one line per notification
    open http://127.0.0.1:9199/                          # the last 100, newest first

Standard library only; never use it outside a demo (no auth, keeps payloads in memory).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_KEPT = 100
ROBOT_OK = {"ok": True, "errcode": 0, "errmsg": "ok", "code": 0, "msg": "success", "StatusCode": 0}


def summarize(path: str, body: bytes) -> str:
    """One human line for a notification: Slack / Alertmanager webhook / robot payloads, else the size."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return f"{len(body)} bytes (not JSON)"
    if not isinstance(data, dict):
        return f"JSON {type(data).__name__}"
    if "attachments" in data:  # Slack
        att = (data.get("attachments") or [{}])[0]
        return f"slack {data.get('channel', '')}: {att.get('title') or att.get('fallback') or ''}".strip()
    if "alerts" in data and "status" in data:  # Alertmanager webhook
        names = sorted({a.get("labels", {}).get("alertname", "?") for a in data.get("alerts", [])})
        return f"alertmanager webhook {data['status']}: {', '.join(names)}"
    for key in ("markdown", "text", "content"):  # DingTalk / WeCom / Feishu robots
        part = data.get(key)
        if isinstance(part, dict):
            title = part.get("title") or str(part.get("content") or part.get("text") or "")[:80]
            return f"robot {data.get('msgtype') or data.get('msg_type') or key}: {title}"
    if "msg_type" in data:
        return f"robot {data['msg_type']}"
    return "JSON keys: " + ", ".join(sorted(data)[:8])


class Sink:
    def __init__(self) -> None:
        self.items: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT)
        self.count = 0
        self.lock = threading.Lock()

    def add(self, path: str, body: bytes) -> dict[str, Any]:
        item = {
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "path": path,
            "summary": summarize(path, body),
            "body": body.decode("utf-8", "replace"),
        }
        with self.lock:
            self.count += 1
            item["n"] = self.count
            self.items.appendleft(item)
        return item


def make_handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "comfyui-demo-sink"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet access log; notifications are printed
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 4 * 1024 * 1024))
            item = sink.add(self.path, body)
            print(f"[demo-sink] #{item['n']} {item['time']} POST {self.path}: {item['summary']}", flush=True)
            self._send(200, json.dumps(ROBOT_OK).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path in ("/-/healthy", "/-/ready"):
                self._send(200, b"OK\n", "text/plain")
                return
            with sink.lock:
                items = list(sink.items)
            if self.path.startswith("/api/notifications"):
                self._send(200, json.dumps(items).encode(), "application/json")
                return
            rows = (
                "".join(
                    f"<details><summary>#{i['n']} {html.escape(i['time'])} "
                    f"<code>{html.escape(i['path'])}</code> {html.escape(i['summary'])}</summary>"
                    f"<pre>{html.escape(i['body'])}</pre></details>"
                    for i in items
                )
                or "<p>Nothing yet. The first alert arrives about two minutes after the demo starts.</p>"
            )
            page = (
                f"<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=10>"
                f"<title>demo sink</title><h1>Notifications received: {len(items)}</h1>{rows}"
            )
            self._send(200, page.encode(), "text/html; charset=utf-8")

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default %(default)s)")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), make_handler(Sink()))
    print(f"[demo-sink] listening on {args.listen}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
