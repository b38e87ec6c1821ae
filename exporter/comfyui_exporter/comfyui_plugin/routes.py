"""The HTTP side of the tap, served by ComfyUI's own aiohttp server.

GET /comfyui-exporter/v1/events?after=SEQ&wait=SECONDS[&limit=N][&boot=BOOT_ID]
  -> {"plugin_version", "boot_id", "seq" (newest), "oldest_seq", "events": [...]}
  Returns at once when there are events after SEQ, else parks up to ``wait`` seconds (max 30).
  ``boot`` is the boot id the caller last saw: if it is not ours, ComfyUI restarted and ``after``
  (a sequence number of the old process) is ignored, so the caller gets the new process's events
  from the start instead of silently skipping the first SEQ of them. An ``after`` beyond our newest
  seq means the same thing and is treated the same way.
GET /comfyui-exporter/v1/status -> ``Tap.status()``.

The handlers only read the ring and serialize; a long-poll parks on a future, so no request ever
blocks ComfyUI's event loop.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from aiohttp import web

from .tap import PLUGIN_VERSION, Tap

PREFIX = "/comfyui-exporter/v1"
MAX_WAIT_S = 30.0
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000


def _authorized(tap: Tap, request: web.Request) -> bool:
    if not tap.token:
        return True
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        supplied = header[7:]
    else:
        supplied = request.headers.get("X-ComfyUI-Exporter-Token", "")
    return hmac.compare_digest(supplied.encode(), tap.token.encode())


def _number(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise web.HTTPBadRequest(text=f"{name} must be a finite number")
    return value


def make_handlers(tap: Tap) -> dict[str, Any]:
    """Returns the route handlers bound to ``tap`` (registered by ``install``; used by tests)."""

    async def events(request: web.Request) -> web.Response:
        if not _authorized(tap, request):
            return web.json_response({"error": "unauthorized"}, status=401)
        after = int(_number(request, "after", 0))
        wait = min(max(_number(request, "wait", 0), 0.0), MAX_WAIT_S)
        limit = int(min(max(_number(request, "limit", DEFAULT_LIMIT), 0), MAX_LIMIT))
        boot = request.query.get("boot")
        if (boot and boot != tap.ring.boot_id) or after > tap.ring.seq or after < 0:
            after, wait = 0, 0.0
        if limit > 0:
            await tap.ring.wait_after(after, wait)
        newest, oldest, batch = tap.ring.snapshot(after, limit)
        return web.json_response(
            {
                "plugin_version": PLUGIN_VERSION,
                "boot_id": tap.ring.boot_id,
                "seq": newest,
                "oldest_seq": oldest,
                "events": batch,
            }
        )

    async def status(request: web.Request) -> web.Response:
        if not _authorized(tap, request):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(tap.status())

    return {"events": events, "status": status}


def register_routes(tap: Tap, routes: Any) -> None:
    """Adds the routes to ComfyUI's RouteTableDef before ``add_routes`` (which adds /api copies)."""
    handlers = make_handlers(tap)
    routes.get(PREFIX + "/events")(handlers["events"])
    routes.get(PREFIX + "/status")(handlers["status"])
