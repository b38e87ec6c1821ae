"""The exporter's own HTTP endpoints: /metrics, /failures, /-/healthy, /-/ready and a landing page.

A threaded stdlib server is enough: a scrape only renders in-memory state and never waits on
ComfyUI. ``authorize`` and ``wrap_socket`` are hooks for the web config (TLS, basic auth).
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .. import __version__

log = logging.getLogger(__name__)

FailuresProvider = Callable[[dict[str, str]], list[dict[str, object]]]


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        failures: FailuresProvider | None,
        ready: Callable[[], bool],
        authorize: Callable[[str, str | None], bool] | None = None,
        extra_headers: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.failures = failures
        self.ready = ready
        self.authorize = authorize
        self.extra_headers = extra_headers

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if self.server.authorize and not self.server.authorize(url.path, self.headers.get("Authorization")):
            self._send(
                401, b"Unauthorized\n", "text/plain", {"WWW-Authenticate": 'Basic realm="comfyui-exporter"'}
            )
            return
        route = {
            "/metrics": self._metrics,
            "/failures": self._failures,
            "/-/healthy": lambda _q: self._send(200, b"OK\n", "text/plain"),
            "/-/ready": self._ready,
            "/": self._landing,
        }.get(url.path)
        if route is None:
            self._send(404, b"Not Found\n", "text/plain")
            return
        route(parse_qs(url.query))

    def _metrics(self, query: dict[str, list[str]]) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept"))
        body = encoder(self.server.registry)
        headers = {}
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._send(200, body, content_type, headers)

    def _failures(self, query: dict[str, list[str]]) -> None:
        if self.server.failures is None:
            self._send(404, b"/failures is disabled (--web.disable-failures)\n", "text/plain")
            return
        filters = {k: v[0] for k, v in query.items() if k in ("comfyui", "error_type") and v}
        body = json.dumps({"failures": self.server.failures(filters)}, ensure_ascii=False).encode()
        self._send(200, body, "application/json")

    def _ready(self, _query: dict[str, list[str]]) -> None:
        ok = self.server.ready()
        self._send(200 if ok else 503, b"Ready\n" if ok else b"Starting\n", "text/plain")

    def _landing(self, _query: dict[str, list[str]]) -> None:
        links = "".join(
            f'<li><a href="{path}">{path}</a> — {html.escape(text)}</li>'
            for path, text in (
                ("/metrics", "Prometheus metrics"),
                ("/failures", "the last 100 failures with their messages (JSON)"),
                ("/-/healthy", "liveness"),
                ("/-/ready", "readiness"),
            )
        )
        page = (
            "<!doctype html><html><head><title>ComfyUI exporter</title></head><body>"
            f"<h1>ComfyUI exporter {html.escape(__version__)}</h1><ul>{links}</ul></body></html>"
        )
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {
            **(self.server.extra_headers() if self.server.extra_headers else {}),
            **(headers or {}),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET
