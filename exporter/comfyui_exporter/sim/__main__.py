"""``comfyui-exporter-sim``: a protocol-faithful ComfyUI 0.8.0 stand-in for tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .versions import DEFAULT_VERSION, PROFILES  # stdlib only: --help works without the extra

try:
    from .instance import SimOptions
    from .runtime import SimServer
    from .scenario import ScenarioDriver, load_scenario
    from .sysinfo import DeviceOptions
except ModuleNotFoundError as exc:  # a plain `pip install .` has no aiohttp: say so, no traceback
    if (exc.name or "").startswith("comfyui_exporter"):
        raise
    _MISSING: str | None = exc.name
else:
    _MISSING = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="comfyui-exporter-sim",
        description="A protocol-faithful ComfyUI 0.8.0 stand-in for tests, benchmarks and the demo.",
    )
    p.add_argument("--listen", default="127.0.0.1:8188", help="HOST:PORT (port 0 = pick a free one)")
    p.add_argument("--scenario", default=None, help="built-in name (idle, demo, load) or YAML/JSON file")
    p.add_argument("--rate", type=float, default=None, help="override the scenario's prompts per second")
    p.add_argument(
        "--no-jobs-api", action="store_true", help="behave like ComfyUI < 0.6.0 (/api/jobs -> 404)"
    )
    p.add_argument(
        "--jobs-cancelled",
        action="store_true",
        help="report interrupted prompts as 'cancelled' in /api/jobs (newer upstream)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--prefill-history", type=int, default=0, metavar="N", help="start with N history entries")
    p.add_argument("--checkpoint", action="append", default=[], help="pretend this checkpoint is installed")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--device-name", default="NVIDIA H200")
    p.add_argument("--vram-total", type=int, default=150754820096, metavar="BYTES")
    p.add_argument(
        "--comfyui-version",
        choices=sorted(PROFILES),
        default=DEFAULT_VERSION,
        help="which ComfyUI release to answer like (docs/comfyui-versions.md)",
    )
    p.add_argument(
        "--gpus", type=int, default=1, metavar="N", help="CUDA devices on the host (0.38 lists them all)"
    )
    return p.parse_args(argv)


def options_from_args(ns: argparse.Namespace) -> SimOptions:
    host, _, port = ns.listen.rpartition(":")
    argv = ["main.py", "--listen", host or "127.0.0.1", "--port", port]
    if ns.device == "cpu":
        argv.insert(1, "--cpu")
    device = DeviceOptions(
        kind=ns.device, name=ns.device_name, vram_total=ns.vram_total, count=ns.gpus, argv=argv
    )
    return SimOptions(
        host=host or "127.0.0.1",
        port=int(port),
        scenario=ns.scenario,
        no_jobs_api=ns.no_jobs_api,
        jobs_cancelled=ns.jobs_cancelled,
        seed=ns.seed,
        prefill_history=ns.prefill_history,
        checkpoints=list(ns.checkpoint),
        device=device,
        comfyui_version=ns.comfyui_version,
    )


async def serve(ns: argparse.Namespace) -> None:
    """Run until SIGINT/SIGTERM."""
    opts = options_from_args(ns)
    scenario = load_scenario(ns.scenario) if ns.scenario else None
    sim = SimServer(opts)
    await sim.start()
    print(f"comfyui-exporter-sim listening on http://{opts.host}:{opts.port}", flush=True)
    driver = None
    if scenario is not None:
        driver = ScenarioDriver(sim, scenario, ns.rate)
        driver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if driver is not None:
        await driver.stop()
    await sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    if _MISSING:
        print(
            f"comfyui-exporter-sim needs the 'sim' extra ({_MISSING} is not installed): "
            "pip install 'comfyui-exporter[sim]' (from a checkout: pip install '.[sim]')",
            file=sys.stderr,
        )
        return 2
    ns = parse_args(argv)
    try:
        asyncio.run(serve(ns))
    except ValueError as err:
        print(f"comfyui-exporter-sim: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
