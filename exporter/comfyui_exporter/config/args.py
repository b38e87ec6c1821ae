"""Flags and ``COMFYUI_EXPORTER_*`` variables into an :class:`ExporterConfig`.

It lives below the entry points because the exporter, ``doctor`` and the SIGHUP reload all parse
the same command line: with the parser here, none of them has to import another entry point.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from . import file as config_file
from .alerting import add_alertmanager_flags, alertmanager_config, external_url
from .settings import ConfigError, ExporterConfig, TLSOptions, build_instances, parse_listen

ENV_PREFIX = "COMFYUI_EXPORTER_"
# Repeatable flags read from one environment variable: URLs split on commas/whitespace,
# headers on newlines (header values may contain commas).
_LIST_SEPARATORS = {"comfyui_url": None, "comfyui_header": "\n", "comfyui_header_file": "\n"}
_LIST_SEPARATORS["alertmanager_url"] = None
_LIST_SEPARATORS["alertmanager_label"] = "\n"


def _env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="comfyui-exporter",
        description="Prometheus exporter for ComfyUI. Every flag can also be set as "
        "COMFYUI_EXPORTER_<FLAG> (e.g. COMFYUI_EXPORTER_POLL_INTERVAL=5).",
    )
    a = p.add_argument
    a(
        "--comfyui-url",
        action="append",
        default=[],
        metavar="[NAME=]URL[@GPU-uuid]",
        help="ComfyUI to watch; repeatable. Default http://127.0.0.1:8188, named host:port.",
    )
    a(
        "--comfyui-header",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="extra request header for ComfyUI (reverse proxies); repeatable",
    )
    a(
        "--comfyui-header-file",
        action="append",
        default=[],
        metavar="'Name:/path'",
        help="header whose value is read from a file (tokens); repeatable",
    )
    a("--comfyui-ca-file", help="CA bundle for https/wss ComfyUI")
    a("--comfyui-client-cert", help="client certificate (PEM) for mTLS to ComfyUI")
    a("--comfyui-client-key", help="client key (PEM)")
    a("--comfyui-insecure-skip-verify", action="store_true", help="do not verify ComfyUI's certificate")
    a("--listen", default="0.0.0.0:9188", help="HOST:PORT to serve /metrics on (default %(default)s)")
    a(
        "--poll-interval",
        type=float,
        default=5.0,
        help="safety poll interval in seconds (default %(default)s)",
    )
    a(
        "--debounce",
        type=float,
        default=0.1,
        help="seconds to coalesce status broadcasts (default %(default)s)",
    )
    a(
        "--min-poll-interval",
        type=float,
        default=0.25,
        help="least seconds between two triggered polls, to bound the cost under load (default %(default)s)",
    )
    a(
        "--system-stats-interval",
        type=float,
        default=15.0,
        help="seconds between /system_stats polls (default %(default)s)",
    )
    a(
        "--request-timeout",
        type=float,
        default=10.0,
        help="seconds each request to ComfyUI may take (default %(default)s)",
    )
    a(
        "--history-max-items",
        type=int,
        default=512,
        help="largest /history?max_items window before a gap is counted (default %(default)s)",
    )
    a(
        "--history-baseline-items",
        type=int,
        default=32,
        help="history entries recorded as already seen at start (default %(default)s)",
    )
    a(
        "--max-response-bytes",
        type=int,
        default=256 * 1024 * 1024,
        help="largest response read from ComfyUI, in bytes (default %(default)s)",
    )
    a("--no-gpu", action="store_true", help="do not read GPUs through NVML")
    a("--gpu-expected-count", type=int, help="GPUs this host must have (for the GPUMissing alert)")
    a(
        "--plugin",
        choices=["auto", "off"],
        default="auto",
        help="read the optional ComfyUI plugin's event stream when it is installed (default %(default)s)",
    )
    a("--plugin-token-file", help="file with the plugin's token (or env COMFYUI_EXPORTER_PLUGIN_TOKEN)")
    a("--web.config.file", dest="web_config_file", help="exporter-toolkit web config (TLS, basic auth)")
    a(
        "--web.disable-failures",
        dest="web_disable_failures",
        action="store_true",
        help="turn the /failures endpoint off",
    )
    a(
        "--web.failures-require-auth",
        dest="web_failures_require_auth",
        action="store_true",
        help="/failures needs a basic_auth_users login from --web.config.file; /metrics stays open",
    )
    add_alertmanager_flags(p)
    a("--config", metavar="FILE", help="YAML config file; flags and COMFYUI_EXPORTER_* win over it")
    a("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    a("--log-format", default="text", choices=["text", "json"])
    a("--version", action="version", version=f"comfyui-exporter {__version__}")
    return p


def _apply_env(parser: argparse.ArgumentParser, argv: Sequence[str], environ: dict[str, str]) -> list[str]:
    """Turn ``COMFYUI_EXPORTER_*`` variables into flags placed before argv (so flags win)."""
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    extra: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        value = environ.get(_env_name(action.dest))
        flag = action.option_strings[0]
        if value is None or value == "" or (flag in given and action.dest not in _LIST_SEPARATORS):
            continue
        if isinstance(action, argparse._StoreTrueAction):
            if value.strip().lower() in ("1", "true", "yes", "on"):
                extra.append(flag)
        elif action.dest in _LIST_SEPARATORS:
            sep = _LIST_SEPARATORS[action.dest]
            items = value.replace(",", " ").split() if sep is None else value.split(sep)
            for item in items:
                if item.strip():
                    extra.extend([flag, item.strip()])
        else:
            extra.extend([flag, value])
    return extra


def parse_config(
    argv: Sequence[str], environ: dict[str, str] | None = None
) -> tuple[ExporterConfig, argparse.Namespace]:
    parser = build_parser()
    environ = dict(os.environ if environ is None else environ)
    file_config = config_file.prepare(parser, argv, environ)
    args = parser.parse_args([*_apply_env(parser, argv, environ), *argv])
    for flag, value in (
        ("--poll-interval", args.poll_interval),
        ("--request-timeout", args.request_timeout),
        ("--system-stats-interval", args.system_stats_interval),
    ):
        if value <= 0:
            raise ConfigError(f"{flag}: must be positive, got {value}")
    for flag, value in (("--debounce", args.debounce), ("--min-poll-interval", args.min_poll_interval)):
        if value < 0:
            raise ConfigError(f"{flag}: must not be negative, got {value}")
    for flag, value in (
        ("--history-max-items", args.history_max_items),
        ("--history-baseline-items", args.history_baseline_items),
        ("--max-response-bytes", args.max_response_bytes),
    ):
        if value < 1:
            raise ConfigError(f"{flag}: must be at least 1, got {value}")
    if args.gpu_expected_count is not None and args.gpu_expected_count < 0:
        raise ConfigError("--gpu-expected-count: must not be negative")
    if bool(args.comfyui_client_cert) != bool(args.comfyui_client_key) and args.comfyui_client_key:
        raise ConfigError("--comfyui-client-key: needs --comfyui-client-cert")
    tls = TLSOptions(
        args.comfyui_ca_file,
        args.comfyui_client_cert,
        args.comfyui_client_key,
        args.comfyui_insecure_skip_verify,
    )
    if args.web_failures_require_auth and not args.web_config_file:
        raise ConfigError("--web.failures-require-auth: needs --web.config.file with basic_auth_users")
    instances = config_file.instances_for(file_config, args, tls) or build_instances(
        args.comfyui_url, args.comfyui_header, args.comfyui_header_file, tls
    )
    host, port = parse_listen(args.listen)
    plugin_token = environ.get("COMFYUI_EXPORTER_PLUGIN_TOKEN") or None
    if args.plugin_token_file:
        try:
            plugin_token = Path(args.plugin_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--plugin-token-file: cannot read it: {exc.strerror}") from None
    config = ExporterConfig(
        instances=instances,
        listen_host=host,
        listen_port=port,
        poll_interval=args.poll_interval,
        debounce=args.debounce,
        min_poll_interval=args.min_poll_interval,
        system_stats_interval=args.system_stats_interval,
        request_timeout=args.request_timeout,
        history_baseline_items=args.history_baseline_items,
        history_max_items=args.history_max_items,
        max_response_bytes=args.max_response_bytes,
        gpu_enabled=not args.no_gpu,
        gpu_expected_count=args.gpu_expected_count,
        web_config_file=args.web_config_file,
        failures_enabled=not args.web_disable_failures,
        failures_require_auth=args.web_failures_require_auth,
        plugin_enabled=args.plugin == "auto",
        plugin_token=plugin_token,
        alertmanager=alertmanager_config(args),
        external_url=external_url(args.web_external_url),
    )
    return config, args
