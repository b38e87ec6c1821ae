"""Wiring: the ``SimServer`` that owns the listener, and the aiohttp app it serves.

A simulated restart must look like a real one from outside (listener closed, sockets dropped,
queue/history/``number`` gone), while the simulator's own ground truth (outcomes, stats, faults,
the scenario driver) keeps running. So everything ComfyUI keeps in memory lives in an ``Instance``
(``instance``) and is thrown away on restart; everything else lives in ``SimServer``. Assembling
the app here, not in the handler modules, is what lets those modules see the server only through
the ``host.SimHost`` protocol: this module imports them, never the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from aiohttp import web

from .control import add_control_routes
from .instance import Instance, SimOptions
from .ledger import Faults, Outcomes, Stats
from .middleware import sim_middleware
from .prefill import prefill_history
from .server import add_comfy_routes


def build_app(sim: SimServer) -> web.Application:
    """Create the aiohttp application for one server lifetime (a restart gets a fresh one)."""
    app = web.Application(middlewares=[sim_middleware(sim)], client_max_size=100 * 1024 * 1024)
    add_comfy_routes(app, sim)
    add_control_routes(app, sim)
    return app


class SimServer:
    """The simulator process: serves one Instance at a time and restarts it on request.

    Handlers get it as a ``host.SimHost``; keep the two in step when adding what they may use.
    """

    def __init__(self, opts: SimOptions) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.outcomes = Outcomes()
        self.stats = Stats()
        self.faults = Faults()
        self.instance: Instance | None = None
        self._runner: web.AppRunner | None = None
        self._restarting = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def up(self) -> bool:
        return self.instance is not None and not self._restarting

    async def start(self) -> None:
        """Start a fresh Instance and listen (the port is reused across restarts)."""
        self.instance = Instance(self.opts, self.outcomes, self.rng)
        if self.opts.prefill_history:
            prefill_history(self.instance.queue, self.opts.prefill_history, self.rng)
        await self.instance.start()
        app = build_app(self)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.opts.host, self.opts.port, reuse_address=True)
        await site.start()
        if self.opts.port == 0:  # resolve an ephemeral port once, keep it for restarts
            server = site._server
            if server is not None and server.sockets:
                self.opts.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, drop every connection and forget the Instance (a process exit)."""
        inst, self.instance = self.instance, None
        if inst is not None:
            await inst.hub.drop_all()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None
        if inst is not None:
            await inst.stop()

    def schedule_restart(self, down_seconds: float) -> None:
        """Restart shortly after the current response has been sent."""
        task = asyncio.get_running_loop().create_task(self._restart(down_seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restart(self, down_seconds: float) -> None:
        self._restarting = True
        try:
            await asyncio.sleep(0.05)
            await self.stop()
            await asyncio.sleep(max(0.0, down_seconds))
            await self.start()
        finally:
            self._restarting = False

    async def drop_websockets(self) -> None:
        if self.instance is not None:
            await self.instance.hub.drop_all()
