"""``comfyui-exporter``: the entry point; flags come from ``config.args``, the process from ``lifecycle``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ..config.args import parse_config
from ..config.settings import ConfigError
from .logging_setup import setup_logging

log = logging.getLogger("comfyui_exporter")


SUBCOMMAND_HELP = """commands:
  comfyui-exporter [flags]                 run the exporter (the flags above)
  comfyui-exporter doctor [flags]          check each ComfyUI and this host with the same flags; say what
                                           is wrong and how to fix it (doctor --help)
  comfyui-exporter install-plugin COMFYUI_DIR
                                           install the optional ComfyUI plugin (install-plugin --help)
"""


def print_help() -> None:
    """The exporter's flags, then the subcommands (argparse alone would not list them)."""
    import argparse

    from ..config.args import build_parser

    parser = build_parser()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = SUBCOMMAND_HELP
    parser.print_help()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    if "-h" in argv or "--help" in argv:
        print_help()
        return 0
    try:
        config, args = parse_config(argv)
    except ConfigError as exc:
        print(f"comfyui-exporter: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, args.log_format)
    from ..wiring.app import Exporter  # imported late: keeps `--help` fast and free of NVML

    try:
        exporter = Exporter(config)
    except ConfigError as exc:
        print(f"comfyui-exporter: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        exporter.start()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.listen_host, config.listen_port, exc.strerror)
        return 1
    from .lifecycle import make_reloader, run_until_stopped

    return run_until_stopped(exporter, make_reloader(exporter, argv, args))


def _install_plugin(argv: list[str]) -> int:
    from .plugin_install import main as install_main

    return install_main(argv)


def _doctor(argv: list[str]) -> int:
    from .doctor import main as doctor_main

    return doctor_main(argv)


SUBCOMMANDS = {"install-plugin": _install_plugin, "doctor": _doctor}

if __name__ == "__main__":
    sys.exit(main())
