"""Request middleware: per-route cost accounting and HTTP fault injection.

Benchmarks read ``/_sim/stats`` to learn what a scraper cost the server (requests, response
bytes, handler seconds); fault tests make a route slow, fail, return broken JSON or return a huge
body. The control API itself (``/_sim/*``) is never faulted nor counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .ledger import route_key

if TYPE_CHECKING:
    from .host import SimHost

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"


def _body_len(resp: web.StreamResponse) -> int:
    if isinstance(resp, web.Response) and isinstance(resp.body, bytes | bytearray):
        return len(resp.body)
    return 0


def _malformed(resp: web.StreamResponse) -> web.Response:
    """A JSON content type with a body that is not JSON (cut in the middle of a value)."""
    body = resp.body if isinstance(resp, web.Response) and isinstance(resp.body, bytes) else b"{}"
    cut = body[: max(1, len(body) // 2)]
    if cut == body:
        cut = b'{"'
    return web.Response(
        status=resp.status, body=cut + b"\x00<!-- truncated", content_type="application/json", charset="utf-8"
    )


def _oversize(resp: web.StreamResponse, size: int) -> web.Response:
    """The real JSON, padded with whitespace to ``size`` bytes: valid, parseable, and huge."""
    body = resp.body if isinstance(resp, web.Response) and isinstance(resp.body, bytes) else b"{}"
    if len(body) < size:
        body = body + b" " * (size - len(body))
    return web.Response(status=resp.status, body=body, content_type="application/json", charset="utf-8")


def sim_middleware(sim: SimHost) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Build the middleware bound to the simulator's persistent ledger."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim"):
            return await handler(request)
        faults = sim.faults
        key = route_key(path)
        delay = faults.lookup("delay_ms", path)
        if delay:
            await asyncio.sleep(float(delay) / 1000.0)
        started = time.perf_counter()
        nbytes = 0
        try:
            code = faults.lookup("status", path)
            if code:
                resp: web.StreamResponse = web.Response(
                    status=int(code), text=f"{int(code)} simulated fault", content_type="text/plain"
                )
            else:
                resp = await handler(request)
                if faults.lookup("malformed", path):
                    resp = _malformed(resp)
                size = faults.lookup("oversize_bytes", path)
                if size:
                    resp = _oversize(resp, int(size))
            nbytes = _body_len(resp)
            return resp
        except web.HTTPException as exc:
            nbytes = len(exc.text or "")
            raise
        except Exception:
            nbytes = len(SERVER_ERROR_TEXT)
            raise
        finally:
            if key != "/ws":
                sim.stats.record(key, nbytes, time.perf_counter() - started)
            else:
                sim.stats.record(key, 0, 0.0)

    return middleware
