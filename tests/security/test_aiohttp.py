"""The relay's side: an aiohttp app with ``aiohttp_middleware`` and ``aiohttp_ssl_context``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from comfyui_exporter.exposition.webconfig import WebConfigWatcher
from comfyui_exporter.exposition.webserve import aiohttp_middleware, aiohttp_ssl_context
from comfyui_exporter.sim.testing import free_port

from .conftest import PASSWORD, tls_block, wait_for, write_config
from .pki import PKI

web = pytest.importorskip("aiohttp.web")


class AiohttpServer:
    def __init__(self, watcher: WebConfigWatcher) -> None:
        self.watcher = watcher
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _start(self) -> None:
        async def hello(_request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        async def missing(_request: web.Request) -> web.Response:
            raise web.HTTPNotFound()

        app = web.Application(middlewares=[aiohttp_middleware(self.watcher)])
        app.router.add_get("/webhook", hello)
        app.router.add_get("/missing", missing)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=aiohttp_ssl_context(self.watcher))
        await site.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def aio() -> Iterator:
    servers: list[AiohttpServer] = []

    def start(path: Path) -> AiohttpServer:
        watcher = WebConfigWatcher(path, poll_interval=0.1)
        server = AiohttpServer(watcher)
        server.thread.start()
        assert server.ready.wait(10)
        watcher.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.watcher.stop()
        server.stop()


def test_relay_tls_basic_auth_headers(tmp_path: Path, pki: PKI, aio, hashed: str) -> None:
    config = (
        tls_block(pki)
        + f"basic_auth_users:\n  alertmanager: {hashed}\n"
        + "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n"
    )
    server = aio(write_config(tmp_path / "web.yml", config))
    url = f"https://127.0.0.1:{server.port}/webhook"
    ok = requests.get(url, verify=str(pki.ca.cert), auth=("alertmanager", PASSWORD), timeout=5)
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    assert ok.headers["X-Frame-Options"] == "sameorigin"
    refused = requests.get(url, verify=str(pki.ca.cert), auth=("alertmanager", "x"), timeout=5)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Basic"
    assert requests.get(url, verify=str(pki.ca.cert), timeout=5).status_code == 401
    missing = requests.get(
        url.replace("webhook", "missing"), verify=str(pki.ca.cert), auth=("alertmanager", PASSWORD), timeout=5
    )
    assert missing.status_code == 404 and missing.headers["X-Frame-Options"] == "sameorigin"


def test_relay_reload_applies_client_auth_to_new_connections(tmp_path: Path, pki: PKI, aio) -> None:
    path = write_config(tmp_path / "web.yml", tls_block(pki))
    server = aio(path)
    url = f"https://127.0.0.1:{server.port}/webhook"
    assert requests.get(url, verify=str(pki.ca.cert), timeout=5).status_code == 200
    write_config(path, tls_block(pki, "RequireAndVerifyClientCert"))
    wait_for(lambda: server.watcher.reloads == 1, what="reload")
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, verify=str(pki.ca.cert), timeout=5)
    client = (str(pki.client.cert), str(pki.client.key))
    assert requests.get(url, verify=str(pki.ca.cert), cert=client, timeout=5).status_code == 200


def test_relay_plain_http_without_tls(tmp_path: Path, aio) -> None:
    server = aio(write_config(tmp_path / "web.yml", "rate_limit:\n  interval: 1h\n  burst: 1\n"))
    url = f"http://127.0.0.1:{server.port}/webhook"
    assert [requests.get(url, timeout=5).status_code for _ in range(2)] == [200, 429]
