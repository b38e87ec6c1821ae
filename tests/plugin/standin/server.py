"""Stand-in for ComfyUI 0.8.0's server.PromptServer (the parts the plugin and tests touch).

Routes live in a ``web.RouteTableDef`` that custom nodes extend while they load; ``add_routes``
then adds an ``/api`` copy of each and mounts them, as in 0.8.0. POST /prompt follows 0.8.0's
order: on_prompt handlers, number, then either ``no_prompt`` or ``execution.validate_prompt``
(looked up on the module at call time) and ``prompt_queue.put`` or HTTP 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import execution
from aiohttp import web


class PromptServer:
    instance: PromptServer | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        PromptServer.instance = self
        self.loop = loop
        self.messages: asyncio.Queue = asyncio.Queue()
        self.prompt_queue = execution.PromptQueue(self)
        self.app = web.Application()
        self.routes = web.RouteTableDef()
        self.sockets: dict[str, Any] = {}
        self.number = 0
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.on_prompt_handlers: list[Any] = []
        self.sent: list[tuple[Any, Any, Any]] = []
        routes = self.routes

        @routes.post("/prompt")
        async def post_prompt(request: web.Request) -> web.Response:
            json_data = self.trigger_on_prompt(await request.json())
            if "number" in json_data:
                number = float(json_data["number"])
            else:
                front = isinstance(json_data, dict) and bool(json_data.get("front"))
                number = -self.number if front else self.number
                self.number += 1
            if "prompt" not in json_data:
                error = {"type": "no_prompt", "message": "No prompt provided",
                         "details": "No prompt provided", "extra_info": {}}
                return web.json_response({"error": error, "node_errors": {}}, status=400)
            prompt = json_data["prompt"]
            prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
            partial = json_data.get("partial_execution_targets")
            valid = await execution.validate_prompt(prompt_id, prompt, partial)
            extra_data = dict(json_data.get("extra_data", {}))
            if "client_id" in json_data:
                extra_data["client_id"] = json_data["client_id"]
            if not valid[0]:
                return web.json_response({"error": valid[1], "node_errors": valid[3]}, status=400)
            sensitive = {k: extra_data.pop(k) for k in execution.SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
            extra_data["create_time"] = int(time.time() * 1000)
            self.prompt_queue.put((number, prompt_id, prompt, extra_data, valid[2], sensitive))
            return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": valid[3]})

        @routes.get("/prompt")
        async def get_prompt(request: web.Request) -> web.Response:
            remaining = self.prompt_queue.get_tasks_remaining()
            return web.json_response({"exec_info": {"queue_remaining": remaining}})

    def add_routes(self) -> None:
        api_routes = web.RouteTableDef()
        for route in self.routes:
            if isinstance(route, web.RouteDef):
                api_routes.route(route.method, "/api" + route.path)(route.handler, **route.kwargs)
        self.app.add_routes(api_routes)
        self.app.add_routes(self.routes)

    def add_on_prompt_handler(self, handler: Any) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: Any) -> Any:
        for handler in self.on_prompt_handlers:
            with contextlib.suppress(Exception):
                json_data = handler(json_data)
        return json_data

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.loop.call_soon_threadsafe(self.messages.put_nowait, (event, data, sid))

    def queue_updated(self) -> None:
        self.send_sync("status", {"status": {"exec_info": {
            "queue_remaining": self.prompt_queue.get_tasks_remaining()}}})

    async def publish_loop(self) -> None:
        while True:
            self.sent.append(await self.messages.get())
