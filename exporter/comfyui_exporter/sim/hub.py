"""Websocket registry and message routing, mirroring ComfyUI's ``sockets`` dict and publish loop.

Routing rules are the whole point of this module: ``sid=None`` broadcasts, a sid sends to that
socket only, an unknown sid drops the message silently; a second socket with the same clientId
replaces the first in the table, and when either closes the id is removed. Messages go through
one FIFO drained by a single task, so their order is the order the executor produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

from aiohttp import web

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4



def _fake_jpeg(size: int = 4726) -> bytes:
    """A JPEG-looking blob of the recorded preview size (only headers and length matter to clients)."""
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return head + b"\x00" * (size - len(head) - 2) + b"\xff\xd9"


PREVIEW_JPEG = _fake_jpeg()


def encode_text(node_id: str, text: str) -> bytes:
    """Binary TEXT frame: type, node-id length, node id, UTF-8 text."""
    nid = node_id.encode()
    return struct.pack(">I", TEXT) + struct.pack(">I", len(nid)) + nid + text.encode()


def encode_preview(image: bytes) -> bytes:
    """Legacy PREVIEW_IMAGE frame (format 1 = JPEG)."""
    return struct.pack(">I", PREVIEW_IMAGE) + struct.pack(">I", 1) + image


def encode_preview_meta(image: bytes, metadata: dict[str, Any]) -> bytes:
    """PREVIEW_IMAGE_WITH_METADATA frame: type, metadata length, JSON metadata, image."""
    meta = json.dumps(metadata).encode()
    return struct.pack(">I", PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(meta)) + meta + image


class Hub:
    """All connected sockets of one server lifetime, keyed by client id (sid)."""

    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.all_sockets: set[web.WebSocketResponse] = set()
        self.log_subscribers: set[str] = set()
        self._queue: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._publish_loop())

    async def stop(self) -> None:
        """Close every socket (a dying process drops its connections) and stop publishing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.drop_all()

    async def drop_all(self) -> None:
        for ws in list(self.all_sockets):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001, message=b"server going away"), 1.0)
        self.sockets.clear()
        self.metadata.clear()

    # -- sending ----------------------------------------------------------------------------------
    def send_sync(self, event: str, data: Any, sid: str | None) -> None:
        """Queue a JSON event; ``sid=None`` means broadcast."""
        self._queue.put_nowait(("json", {"type": event, "data": data}, sid))

    def send_binary(self, payload: bytes, sid: str | None) -> None:
        self._queue.put_nowait(("bytes", payload, sid))

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid is None:
            return False
        flags = self.metadata.get(sid, {}).get("feature_flags", {})
        return bool(flags.get("supports_preview_metadata", False))

    async def _publish_loop(self) -> None:
        while True:
            kind, payload, sid = await self._queue.get()
            await self._deliver(kind, payload, sid)

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the sockets."""
        while not self._queue.empty():
            await asyncio.sleep(0.001)

    async def _deliver(self, kind: str, payload: Any, sid: str | None) -> None:
        if sid is None:
            targets = list(self.sockets.values())
        else:
            ws = self.sockets.get(sid)
            targets = [ws] if ws is not None else []
        for ws in targets:
            with contextlib.suppress(Exception):
                if kind == "json":
                    await ws.send_json(payload)
                else:
                    await ws.send_bytes(payload)

    async def send_now(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        """Direct send to one socket (connect-time status/executing/feature_flags replies)."""
        with contextlib.suppress(Exception):
            await ws.send_json({"type": event, "data": data})

    # -- registry ---------------------------------------------------------------------------------
    def register(self, sid: str, ws: web.WebSocketResponse) -> None:
        self.sockets.pop(sid, None)
        self.sockets[sid] = ws
        self.metadata[sid] = {"feature_flags": {}}
        self.all_sockets.add(ws)

    def unregister(self, sid: str, ws: web.WebSocketResponse) -> None:
        # ComfyUI pops by sid regardless of which socket owns it: either closing drops the id.
        self.sockets.pop(sid, None)
        self.metadata.pop(sid, None)
        self.all_sockets.discard(ws)
        self.log_subscribers.discard(sid)
