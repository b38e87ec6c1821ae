"""``comfyui-alert-relay --config relay.yml``: run the relay until SIGTERM/SIGINT; SIGHUP reloads."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from . import __version__

try:
    from .config import ConfigError, load_config
    from .redact import install_log_redaction
    from .server import Relay, build_renderer
except ModuleNotFoundError as exc:  # a plain `pip install .` has no aiohttp/jinja2: say so, no traceback
    if (exc.name or "").startswith("comfyui_exporter"):
        raise
    _MISSING: str | None = exc.name
else:
    _MISSING = None

log = logging.getLogger("comfyui_exporter.relay")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="comfyui-alert-relay",
        description="Alertmanager webhook relay to DingTalk, WeCom and Feishu robots.",
    )
    p.add_argument("--config", required=True, help="path to relay.yml")
    p.add_argument("--listen", help="override listen (host:port)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--check-config", action="store_true", help="validate the config (and templates) and exit")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p.parse_args(argv)


async def _serve(relay: Relay, host: str | None, port: int | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()  # keep references so reloads are not garbage-collected

    def on_hup() -> None:
        async def reload() -> None:
            with contextlib.suppress(ConfigError):  # already logged; the running config stays
                await relay.reload()

        tasks.add(task := loop.create_task(reload()))
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await relay.start(host, port)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await relay.stop()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: exit 2 on a config error (naming the key), 0 after a clean stop."""
    if _MISSING:
        print(
            f"comfyui-alert-relay needs the 'relay' extra ({_MISSING} is not installed): "
            "pip install 'comfyui-exporter[relay]' (from a checkout: pip install '.[relay]')",
            file=sys.stderr,
        )
        return 2
    args = _parse_args(argv)
    install_log_redaction()
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
        build_renderer(config)
    except ConfigError as exc:
        print(f"comfyui-alert-relay: config error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"config OK: {len(config.targets)} target(s): {', '.join(sorted(config.targets))}")
        for name, why in sorted(config.disabled_targets.items()):
            print(f"target {name} disabled (optional: true): {why}")
        return 0
    host = port = None
    if args.listen:
        host, _, port_text = args.listen.rpartition(":")
        if not port_text.isdigit():
            print("comfyui-alert-relay: --listen must be host:port", file=sys.stderr)
            return 2
        port = int(port_text)
    relay = Relay(config, config_path=args.config)
    asyncio.run(_serve(relay, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
