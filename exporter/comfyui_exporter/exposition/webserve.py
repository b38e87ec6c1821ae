"""Put a :class:`WebConfigWatcher` in front of the exporter's stdlib server and the relay's aiohttp app.

Stdlib (``wrap_server``): the TLS handshake runs in the per-connection handler thread, never in the
accept loop, so a client that connects and then says nothing holds one thread for at most
``handshake_timeout`` and never delays anyone else. Each connection is wrapped with the context
current at that moment, so a reloaded certificate applies to the next connection.

aiohttp (``aiohttp_ssl_context`` + ``aiohttp_middleware``): asyncio wraps each connection through the
context's ``wrap_bio``, which the watcher's reloading context delegates to the current config;
bcrypt checks run in the default executor so the event loop never waits ~100 ms on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer
from typing import Any

from .webconfig import WebConfigWatcher

log = logging.getLogger(__name__)


def wrap_server(server: BaseServer, watcher: WebConfigWatcher, handshake_timeout: float = 10.0) -> None:
    """Apply the web config to a threading stdlib HTTP server (``ExporterHTTPServer``) in place.

    Sets the server's ``authorize``/``extra_headers`` hooks (when not already set), answers 429
    when ``rate_limit`` says so, and, when the config has TLS, speaks TLS on every connection.
    Call it after constructing the server and before ``serve_forever``.
    """
    if getattr(server, "authorize", None) is None:
        server.authorize = watcher.authorize  # type: ignore[attr-defined]
    if getattr(server, "extra_headers", None) is None:
        server.extra_headers = watcher.headers  # type: ignore[attr-defined]
    server.RequestHandlerClass = _rate_limited(server.RequestHandlerClass, watcher)  # type: ignore[arg-type]
    if not watcher.tls_enabled:
        return
    plain_finish = server.finish_request

    def finish_request(request: Any, client_address: Any) -> None:
        connection = tls_handshake(request, client_address, watcher, handshake_timeout)
        if connection is None:
            return
        try:
            plain_finish(connection, client_address)
        finally:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    server.finish_request = finish_request  # type: ignore[method-assign]


def tls_handshake(
    sock: socket.socket, client_address: Any, watcher: WebConfigWatcher, timeout: float = 10.0
) -> ssl.SSLSocket | None:
    """Server-side handshake on an accepted socket; None (socket closed, reason logged) on failure."""
    context = watcher.current_ssl_context()
    if context is None:
        sock.close()
        return None
    try:
        sock.settimeout(timeout)
        connection = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except OSError as exc:
        log.debug("TLS setup for %s failed: %s", client_address, exc)
        sock.close()
        return None
    try:
        connection.do_handshake()
        if not watcher.client_cert_allowed(connection.getpeercert()):
            log.warning(
                "TLS client %s refused: its certificate has none of client_allowed_sans", client_address
            )
            connection.close()
            return None
        connection.settimeout(None)
    except (OSError, ValueError) as exc:  # ssl.SSLError, timeouts and resets are OSErrors
        log.debug("TLS handshake with %s failed: %s", client_address, exc)
        connection.close()
        return None
    return connection


def _rate_limited(handler: type[BaseHTTPRequestHandler], watcher: WebConfigWatcher) -> type:
    if getattr(handler, "_web_config_rate_limited", False):
        return handler

    class RateLimited(handler):  # type: ignore[valid-type, misc]
        _web_config_rate_limited = True

        def do_GET(self) -> None:
            if not watcher.allow_request():
                self.send_error(429, "Too Many Requests")
                return
            super().do_GET()

        def do_HEAD(self) -> None:
            if not watcher.allow_request():
                self.send_error(429, "Too Many Requests")
                return
            super().do_HEAD()

    RateLimited.__name__ = RateLimited.__qualname__ = f"RateLimited{handler.__name__}"
    return RateLimited


# -- aiohttp ---------------------------------------------------------------------------------------------
def aiohttp_ssl_context(watcher: WebConfigWatcher) -> ssl.SSLContext | None:
    """For ``web.TCPSite(..., ssl_context=...)``: None for plain HTTP, else a reloading context."""
    return watcher.ssl_context()


def aiohttp_middleware(watcher: WebConfigWatcher) -> Callable[..., Awaitable[Any]]:
    """An aiohttp middleware: rate limit (429), client SANs (403), basic auth (401), headers."""
    from aiohttp import web

    @web.middleware
    async def web_config(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
        extra = watcher.headers()
        if not watcher.allow_request():
            return web.Response(status=429, text="Too Many Requests\n", headers=extra)
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        if watcher.tls_enabled and not watcher.client_cert_allowed(peercert):
            return web.Response(status=403, text="Forbidden\n", headers=extra)
        if watcher.needs_auth(request.path):
            header = request.headers.get("Authorization")
            loop = asyncio.get_running_loop()
            if not await loop.run_in_executor(None, watcher.authorize, request.path, header):
                return web.Response(
                    status=401, text="Unauthorized\n", headers={**extra, "WWW-Authenticate": "Basic"}
                )
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(extra)
            raise
        if isinstance(response, web.StreamResponse) and not response.prepared:
            response.headers.update(extra)
        return response

    return web_config
