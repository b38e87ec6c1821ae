"""ComfyUI's HTTP and websocket routes (0.8.0, or the version profile's), each also under ``/api``.

Handlers read the *current* Instance from the simulator process on every request, so the same route
table serves whichever simulated process is alive. Status codes, content types and bodies follow
the recordings (e.g. empty 200 bodies for POST /queue, /interrupt, /free, /history; ``{}`` for an
unknown history id; 404 ``{"error": "Job not found"}``).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from . import jobs as jobs_api
from .sysinfo import system_stats
from .versions import canonical_uuid

if TYPE_CHECKING:
    from .host import SimHost
    from .instance import Instance


def add_comfy_routes(app: web.Application, sim: SimHost) -> None:
    """Register ComfyUI's routes on ``app``, bound to whichever Instance ``sim`` holds per request."""
    routes = web.RouteTableDef()

    def inst() -> Instance:
        assert sim.instance is not None
        return sim.instance

    @routes.get("/ws")
    async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if sim.faults.drop_websockets:
            await ws.close(code=1011, message=b"simulated drop")
            return ws
        me = inst()
        sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
        me.hub.register(sid, ws)
        try:
            await me.hub.send_now(ws, "status", {**me.queue_info(), "sid": sid})
            if me.executor.client_id == sid and me.executor.last_node_id is not None:
                await me.hub.send_now(ws, "executing", {"node": me.executor.last_node_id})
            first = True
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                    if first and data.get("type") == "feature_flags":
                        me.hub.metadata.setdefault(sid, {})["feature_flags"] = data.get("data", {})
                        await me.hub.send_now(ws, "feature_flags", sim.opts.profile.features)
                except (ValueError, AttributeError):
                    pass
                first = False
        finally:
            me.hub.unregister(sid, ws)
        return ws

    @routes.get("/features")
    async def features(request: web.Request) -> web.Response:
        return web.json_response(sim.opts.profile.features)

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(inst().queue_info()["status"])

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        body = await request.json()  # invalid JSON raises -> aiohttp's plain-text 500, like ComfyUI
        status, out = inst().submit(body, request.headers.get("Comfy-Usage-Source"))
        return web.json_response(out, status=status)

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        running, pending = inst().queue.current_queue()
        return web.json_response({"queue_running": running, "queue_pending": pending})

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        body = await request.json()
        q = inst().queue
        if body.get("clear"):
            q.wipe_queue()
        for prompt_id in body.get("delete", []) if "delete" in body else []:
            q.delete_queue_item(lambda item, pid=prompt_id: item[1] == pid)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        me = inst()
        prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
        if prompt_id:
            if prompt_id in me.queue.running_ids():
                me.log(f"Interrupting prompt {prompt_id}\n")
                me.executor.interrupt()
            else:
                me.log(f"Prompt {prompt_id} is not currently running, skipping interrupt\n")
        else:
            me.log("Global interrupt (no prompt_id specified)\n")
            me.executor.interrupt()
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        body = await request.json()
        q = inst().queue
        for flag in ("unload_models", "free_memory"):
            if body.get(flag, False):
                q.set_flag(flag, body[flag])
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None  # non-int -> 500
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(inst().queue.get_history(max_items=max_items, offset=offset))

    @routes.get("/history/{prompt_id}")
    async def get_history_item(request: web.Request) -> web.Response:
        return web.json_response(inst().queue.get_history(prompt_id=request.match_info["prompt_id"]))

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        body = await request.json()
        q = inst().queue
        if body.get("clear"):
            q.wipe_history()
        for prompt_id in body.get("delete", []) if "delete" in body else []:
            q.delete_history_item(prompt_id)
        return web.Response(status=200)

    @routes.get("/system_stats")
    async def get_system_stats(request: web.Request) -> web.Response:
        me = inst()
        stats = system_stats(sim.opts.device, me.rng, bool(me.queue.running), sim.opts.profile)
        return web.json_response(stats)

    @routes.get("/object_info")
    async def object_info(request: web.Request) -> web.Response:
        return web.json_response({name: _node_info(c) for name, c in inst().classes.items()})

    @routes.patch("/internal/logs/subscribe")
    async def logs_subscribe(request: web.Request) -> web.Response:
        body = await request.json()
        subs = inst().hub.log_subscribers
        if body.get("enabled"):
            subs.add(body.get("clientId"))
        else:
            subs.discard(body.get("clientId"))
        return web.Response(status=200)

    @routes.get("/internal/logs/raw")
    async def logs_raw(request: web.Request) -> web.Response:
        return web.json_response({"entries": list(inst().logs), "size": {"cols": 80, "rows": 24}})

    if sim.opts.jobs_api:
        _add_jobs_routes(routes, sim, inst)
    else:
        # Before 0.6.0 nothing serves /api/jobs: a bodiless 404, as recorded on 0.3.64.
        @routes.get("/api/jobs")
        async def no_jobs(request: web.Request) -> web.Response:
            return web.Response(status=404)

        @routes.get("/api/jobs/{job_id}")
        async def no_job(request: web.Request) -> web.Response:
            return web.Response(status=404)

    # Every route also under /api (ComfyUI's add_routes does the same; /api/jobs -> /api/api/jobs).
    for route in list(routes):
        assert isinstance(route, web.RouteDef)
        app.router.add_route(route.method, route.path, route.handler)
        app.router.add_route(route.method, "/api" + route.path, route.handler)


def _add_jobs_routes(routes: web.RouteTableDef, sim: SimHost, inst: Any) -> None:
    """``/api/jobs`` (0.6.0+), and on 0.38 the single and batch cancel endpoints."""
    prof = sim.opts.profile
    previewable = prof.previewable_count

    @routes.get("/api/jobs")
    async def get_jobs(request: web.Request) -> web.Response:
        cancelled = sim.opts.cancelled_status
        try:
            params = jobs_api.parse_query(request.rel_url.query, cancelled)
        except jobs_api.JobsError as err:
            return web.json_response(err.body, status=400)
        q = inst().queue
        running, pending = q.current_queue()
        body = jobs_api.list_jobs(running, pending, q.history, params, cancelled, previewable)
        return web.json_response(body)

    @routes.get("/api/jobs/{job_id}")
    async def get_job(request: web.Request) -> web.Response:
        q = inst().queue
        running, pending = q.current_queue()
        job = jobs_api.get_job(
            request.match_info["job_id"], running, pending, q.history, sim.opts.cancelled_status, previewable
        )
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    if not prof.jobs_cancel_api:
        return

    def cancel_one(job_id: str) -> bool:
        """Interrupt it when running, dequeue it when pending (no history entry then)."""
        me = inst()
        running, pending = me.queue.current_queue()
        target = jobs_api.cancel_target(job_id, running, pending)
        if target == "running":
            me.log(f"Cancelling running prompt {job_id}\n")
            me.executor.interrupt()
            return True
        if target == "pending":
            me.log(f"Cancelling pending prompt {job_id}\n")
            return me.queue.delete_queue_item(lambda item: item[1] == job_id)
        return False

    @routes.post("/api/jobs/cancel")
    async def cancel_batch(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "Request body must be valid JSON"}, status=400)
        job_ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(job_ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        invalid = [j if isinstance(j, str) else repr(j) for j in job_ids if not canonical_uuid(j)]
        if invalid:
            body = {"error": "job_ids contains invalid id(s)", "invalid_ids": invalid}
            return web.json_response(body, status=400)
        results = [cancel_one(j) for j in job_ids]
        return web.json_response({"cancelled": any(results)})

    @routes.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(request: web.Request) -> web.Response:
        return web.json_response({"cancelled": cancel_one(request.match_info["job_id"])})


def _node_info(cls: Any) -> dict[str, Any]:
    """A reduced ``/object_info`` entry (enough for clients that list node classes)."""
    return {
        "input": {
            "required": {k: list(v) for k, v in cls.required.items()},
            "optional": {k: list(v) for k, v in cls.optional.items()},
        },
        "output": list(cls.return_types),
        "output_is_list": [False] * len(cls.return_types),
        "output_name": list(cls.return_types),
        "name": cls.name,
        "display_name": cls.name,
        "description": "",
        "python_module": "nodes",
        "category": "sim",
        "output_node": cls.output_node,
    }
