"""Websocket behaviour that the recordings cannot show: dropped sockets, restarts, routing rules."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from comfyui_exporter.sim.testing import SimHandle


async def _recv_types(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[Any]:
    out: list[Any] = []
    try:
        while True:
            msg = await asyncio.wait_for(ws.receive(), seconds)
            if msg.type == aiohttp.WSMsgType.TEXT:
                out.append(json.loads(msg.data)["type"])
            elif msg.type == aiohttp.WSMsgType.BINARY:
                out.append(int.from_bytes(msg.data[:4], "big"))
            else:
                out.append("closed")
                return out
    except TimeoutError:
        return out


def test_drop_websockets_fault_closes_and_refuses(sim: SimHandle) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(sim.ws_url + "?clientId=victim")
            assert (await _recv_types(ws, 0.3)) == ["status"]
            sim.faults(drop_websockets=True)
            assert (await _recv_types(ws, 2.0))[-1] == "closed"
            again = await session.ws_connect(sim.ws_url + "?clientId=victim")
            assert (await _recv_types(again, 2.0)) == ["closed"]
            sim.clear_faults()
            ok = await session.ws_connect(sim.ws_url + "?clientId=victim")
            assert (await _recv_types(ok, 0.3)) == ["status"]
            await ok.close()

    asyncio.run(run())


def test_restart_drops_sockets(sim: SimHandle) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(sim.ws_url + "?clientId=r1")
            await _recv_types(ws, 0.2)
            sim.restart(down_seconds=0.0, wait=False)
            assert (await _recv_types(ws, 3.0))[-1] == "closed"

    asyncio.run(run())
    sim.wait_ready()


def test_routing_with_and_without_client_id_and_preview_types(sim: SimHandle) -> None:
    """Submitter gets everything (type-4 previews); a bystander only status + TEXT; without
    client_id everyone gets progress and type-1 previews but no execution_* events."""

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            sub = await session.ws_connect(sim.ws_url + "?clientId=sub")
            await sub.send_str(
                json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            )
            other = await session.ws_connect(sim.ws_url + "?clientId=other")
            await _recv_types(sub, 0.2)
            await _recv_types(other, 0.2)
            sim.enqueue(
                "success", client_id="sub", seconds=0.1, progress_steps=2, emit_preview=True, emit_text=True
            )
            got_sub, got_other = await asyncio.gather(_recv_types(sub, 0.6), _recv_types(other, 0.6))
            assert {"execution_start", "execution_success", "executed", "progress", 4, 3} <= set(got_sub)
            assert 1 not in got_sub
            assert set(got_other) == {"status", 3}
            sim.enqueue("oom", seconds=0.1, progress_steps=2, emit_preview=True)
            got_sub, got_other = await asyncio.gather(_recv_types(sub, 0.6), _recv_types(other, 0.6))
            for got in (got_sub, got_other):
                assert {"progress", "progress_state", 1, "status"} == set(got)
            await sub.close()
            await other.close()

    asyncio.run(run())
