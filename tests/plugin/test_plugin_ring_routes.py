"""The ring buffer and the events/status routes, served by a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import aiohttp
from aiohttp import web

from comfyui_exporter.comfyui_plugin.ring import EventRing
from comfyui_exporter.comfyui_plugin.routes import PREFIX, register_routes
from comfyui_exporter.comfyui_plugin.tap import Tap


def test_ring_numbers_events_and_keeps_only_the_newest() -> None:
    ring = EventRing(capacity=3, boot_id="b1")
    for i in range(5):
        assert ring.append("progress", {"i": i}) == i + 1
    newest, oldest, events = ring.snapshot(0, 100)
    assert (newest, oldest, ring.dropped) == (5, 3, 2)
    assert [e["seq"] for e in events] == [3, 4, 5] and [e["i"] for e in events] == [2, 3, 4]
    assert [e["seq"] for e in ring.snapshot(3, 100)[2]] == [4, 5]
    assert [e["seq"] for e in ring.snapshot(2, 1)[2]] == [3]
    assert ring.snapshot(5, 100)[2] == [] and ring.snapshot(0, 0)[2] == []
    assert all(e["kind"] == "progress" and isinstance(e["ts"], float) for e in events)


def test_long_poll_wakes_on_append_from_another_thread() -> None:
    ring = EventRing()

    async def main() -> float:
        start = time.monotonic()
        threading.Timer(0.1, ring.append, args=("progress", {})).start()
        await ring.wait_after(0, timeout=5)
        return time.monotonic() - start

    waited = asyncio.run(main())
    assert 0.05 < waited < 2, waited
    assert ring.waiting() == 0


def test_long_poll_returns_at_once_when_events_exist_and_times_out_otherwise() -> None:
    ring = EventRing()
    ring.append("progress", {})

    async def timed(after: int, timeout: float) -> float:
        start = time.monotonic()
        await ring.wait_after(after, timeout)
        return time.monotonic() - start

    assert asyncio.run(timed(0, 5)) < 0.05
    assert 0.15 < asyncio.run(timed(1, 0.2)) < 1.5


async def _serve(tap: Tap) -> tuple[web.AppRunner, str]:
    routes = web.RouteTableDef()
    register_routes(tap, routes)
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


def _run(tap: Tap, scenario: Any) -> Any:
    async def main() -> Any:
        runner, url = await _serve(tap)
        try:
            async with aiohttp.ClientSession() as session:
                return await scenario(session, url + PREFIX)
        finally:
            await runner.cleanup()
    return asyncio.run(main())


def test_events_route_pages_resets_on_boot_mismatch_and_validates() -> None:
    tap = Tap(capacity=10)
    for i in range(4):
        tap.emit("progress", {"i": i})

    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        async with s.get(base + "/events", params={"after": 1, "limit": 2}) as r:
            body = await r.json()
        assert r.status == 200 and body["boot_id"] == tap.ring.boot_id and body["seq"] == 4
        assert [e["seq"] for e in body["events"]] == [2, 3] and body["oldest_seq"] == 1
        async with s.get(base + "/events", params={"after": 3, "boot": "another-boot", "wait": 5}) as r:
            body = await r.json()
        assert [e["seq"] for e in body["events"]] == [1, 2, 3, 4]  # old boot's seq ignored
        async with s.get(base + "/events", params={"after": 99, "wait": 5}) as r:
            assert [e["seq"] for e in (await r.json())["events"]] == [1, 2, 3, 4]
        for bad in ("x", "1e999", "nan"):
            async with s.get(base + "/events", params={"after": bad}) as r:
                assert r.status == 400, bad
        async with s.get(base + "/status") as r:
            status = await r.json()
        assert status["seq"] == 4 and status["plugin_version"] == "1"

    _run(tap, scenario)


def test_long_poll_does_not_block_the_event_loop() -> None:
    tap = Tap()

    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        parked = asyncio.ensure_future(s.get(base + "/events", params={"after": 0, "wait": 3}))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        async with s.get(base + "/status") as r:
            assert r.status == 200
        assert time.monotonic() - start < 0.5  # served while the long-poll is parked
        assert tap.ring.waiting() == 1
        tap.emit("progress", {"from": "worker"})
        resp = await asyncio.wait_for(parked, 2)
        assert [e["from"] for e in (await resp.json())["events"]] == ["worker"]
        resp.release()

    _run(tap, scenario)


def test_token_is_required_when_configured() -> None:
    tap = Tap(token="s3cret")

    async def scenario(s: aiohttp.ClientSession, base: str) -> None:
        for headers, expected in (({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                                  ({"Authorization": "Bearer s3cret"}, 200),
                                  ({"X-ComfyUI-Exporter-Token": "s3cret"}, 200)):
            for path in ("/events", "/status"):
                async with s.get(base + path, headers=headers) as r:
                    assert r.status == expected, (path, headers)

    _run(tap, scenario)
