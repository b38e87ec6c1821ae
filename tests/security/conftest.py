"""Fixtures: a PKI, bcrypt hashes, and the exporter's own HTTP server behind a web config, in-process."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, Gauge

from comfyui_exporter.exposition.http_server import ExporterHTTPServer
from comfyui_exporter.exposition.webconfig import WebConfigWatcher
from comfyui_exporter.exposition.webserve import wrap_server

from .pki import PKI, make_pki

PASSWORD = "s3cret-scrape"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def hashed() -> str:
    """bcrypt of PASSWORD at cost 4 (fast tests; the cost is part of the hash)."""
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def write_config(path: Path, text: str) -> Path:
    """Replace the file atomically, the way an operator should (and bump mtime for good measure)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def tls_block(pki: PKI, client_auth: str | None = None, extra: str = "") -> str:
    lines = ["tls_server_config:", f"  cert_file: {pki.server.cert}", f"  key_file: {pki.server.key}"]
    if client_auth:
        lines += [f"  client_auth_type: {client_auth}", f"  client_ca_file: {pki.ca.cert}"]
    return "\n".join(lines) + "\n" + extra


class Served:
    """An ExporterHTTPServer on 127.0.0.1 with a web config applied, as app.py will wire it."""

    def __init__(self, server: ExporterHTTPServer, watcher: WebConfigWatcher) -> None:
        self.server = server
        self.watcher = watcher
        self.port = server.server_port
        self.failures: list[dict[str, object]] = []

    def url(self, path: str = "/metrics", scheme: str | None = None) -> str:
        scheme = scheme or ("https" if self.watcher.tls_enabled else "http")
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(config: Path, protected_paths: set[str] | None = None, failures: bool = True) -> Served:
        watcher = WebConfigWatcher(config, protected_paths=protected_paths, poll_interval=0.1)
        registry = CollectorRegistry()
        Gauge("security_test_up", "a sample", registry=registry).set(1)
        holder: list[Served] = []
        server = ExporterHTTPServer(
            ("127.0.0.1", 0),
            registry,
            (lambda _f: holder[0].failures) if failures else None,
            lambda: True,
        )
        wrap_server(server, watcher, handshake_timeout=2.0)
        served = Served(server, watcher)
        holder.append(served)
        server.serve_in_thread()
        watcher.start()
        started.append(served)
        return served

    yield start
    for served in started:
        served.watcher.stop()
        served.server.shutdown()
        served.server.server_close()


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")
