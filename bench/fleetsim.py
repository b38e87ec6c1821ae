"""``python -m bench.fleetsim --count N [--rate R]``: N simulated ComfyUI instances in ONE process.

Why one process: 32 simulator processes (one per instance, what the tests use) cost ~1 GB and a
core-minute of start-up on a 2-core machine, which would measure the simulators rather than the
exporter. Each instance here is a full ``SimServer`` (its own port, queue, history, websocket hub)
on one shared event loop; with a scenario rate each runs the built-in ``demo`` mix at R prompts/s.

Prints one JSON line ``{"ports": [...]}`` when every instance listens, then runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from comfyui_exporter.sim.__main__ import options_from_args, parse_args
from comfyui_exporter.sim.runtime import SimServer
from comfyui_exporter.sim.scenario import ScenarioDriver, load_scenario


async def serve(count: int, rate: float, seed: int) -> None:
    sims: list[SimServer] = []
    drivers: list[ScenarioDriver] = []
    scenario = load_scenario("demo")
    for i in range(count):
        opts = options_from_args(parse_args(["--listen", "127.0.0.1:0", "--seed", str(seed + i)]))
        sim = SimServer(opts)
        await sim.start()
        sims.append(sim)
        if rate > 0:
            driver = ScenarioDriver(sim, scenario, rate)
            driver.start()
            drivers.append(driver)
    print(json.dumps({"ports": [s.opts.port for s in sims]}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for driver in drivers:
        with contextlib.suppress(Exception):
            await driver.stop()
    for sim in sims:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleetsim", description=__doc__)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=0.0, help="prompts per second per instance (demo mix)")
    p.add_argument("--seed", type=int, default=1000)
    ns = p.parse_args(argv)
    asyncio.run(serve(ns.count, ns.rate, ns.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
