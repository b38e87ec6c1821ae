"""The ``/_sim`` control API (docs/development.md): how tests and benchmarks steer the simulator.

``/_sim/enqueue`` goes through the very same ``Instance.submit`` as ``POST /prompt`` (validation,
``number`` counter, sensitive-key stripping, status broadcast), so a prompt injected by a test is
indistinguishable from one a user submitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .ledger import Faults

# Re-exported: tests and bench/ build their prompts through this module's names.
from .prompts import OUTCOME_MODES, enqueue_bodies, fault_graph, workflow_document

if TYPE_CHECKING:
    from .host import SimHost

__all__ = ["OUTCOME_MODES", "add_control_routes", "enqueue_bodies", "fault_graph", "workflow_document"]


def add_control_routes(app: web.Application, sim: SimHost) -> None:
    """Register ``/_sim/*`` on ``app``."""

    async def read_json(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        body = await request.json()
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def enqueue(request: web.Request) -> web.Response:
        spec = await read_json(request)
        try:
            bodies = enqueue_bodies(spec, sim.rng)
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=400)
        inst = sim.instance
        assert inst is not None
        ids = []
        for body in bodies:
            status, out = inst.submit(body)
            if status != 200:
                return web.json_response({"error": out, "prompt_ids": ids}, status=500)
            ids.append(out["prompt_id"])
        return web.json_response({"prompt_ids": ids})

    async def restart(request: web.Request) -> web.Response:
        body = await read_json(request)
        down = float(body.get("down_seconds", 0) or 0)
        sim.schedule_restart(down)
        return web.json_response({"restarting": True, "down_seconds": down})

    async def set_faults(request: web.Request) -> web.Response:
        body = await read_json(request)
        sim.faults.update(body)
        if body.get("drop_websockets"):
            await sim.drop_websockets()
        return web.json_response(sim.faults.as_dict())

    async def clear_faults(request: web.Request) -> web.Response:
        sim.faults = Faults()
        return web.json_response(sim.faults.as_dict())

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(sim.faults.as_dict())

    async def stats(request: web.Request) -> web.Response:
        inst = sim.instance
        assert inst is not None
        running = inst.queue.running_ids()
        return web.json_response(
            {
                "requests": sim.stats.as_dict(),
                "ws_clients": len(inst.hub.sockets),
                "history_len": len(inst.queue.history),
                "queue_pending": len(inst.queue.pending),
                "running": running[0] if running else None,
            }
        )

    async def clear_stats(request: web.Request) -> web.Response:
        sim.stats.clear()
        return web.json_response({"requests": {}})

    async def outcomes(request: web.Request) -> web.Response:
        return web.json_response(sim.outcomes.as_dict())

    app.router.add_post("/_sim/enqueue", enqueue)
    app.router.add_post("/_sim/restart", restart)
    app.router.add_post("/_sim/faults", set_faults)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_delete("/_sim/stats", clear_stats)
    app.router.add_get("/_sim/outcomes", outcomes)
