"""``--config comfyui-exporter.yml``: the flags as a file, plus per-instance headers, TLS and GPU.

Many ComfyUI instances with their own tokens and certificates do not fit in flags. The file is
validated completely at start; every error names the file, the line and the dotted key
(``comfyui-exporter.yml:14: instances[1].tls.ca_file: cannot read …``). Relative paths are relative
to the file. Precedence: flag > ``COMFYUI_EXPORTER_*`` environment > file > built-in default, because
the file's values become the parser's defaults (:func:`apply_to_parser`). ``--comfyui-url`` on the
command line or in the environment replaces the file's ``instances`` list as a whole.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .settings import (
    ConfigError,
    InstanceConfig,
    TLSOptions,
    parse_alert_label,
    parse_alertmanager_url,
    parse_duration,
    parse_header,
    parse_header_file,
    parse_instance,
    parse_listen,
)
from .yamlnode import Node, load_file

ENV_CONFIG = "COMFYUI_EXPORTER_CONFIG"
TOP_KEYS = (
    "listen",
    "poll_interval",
    "debounce",
    "min_poll_interval",
    "system_stats_interval",
    "request_timeout",
    "history_max_items",
    "history_baseline_items",
    "max_response_bytes",
    "gpu",
    "web",
    "log",
    "defaults",
    "instances",
    "alertmanager",
)
INSTANCE_KEYS = ("name", "url", "gpu", "headers", "header_files", "tls")
TLS_KEYS = ("ca_file", "client_cert", "client_key", "insecure_skip_verify")
# file key in a tls block -> TLSOptions field
_TLS_FIELDS = {"ca_file": "ca_file", "client_cert": "cert_file", "client_key": "key_file"}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class FileInstance:
    """One entry of ``instances``; headers are resolved (header files read), TLS holds overrides."""

    name: str
    url: str
    gpu_uuid: str | None
    headers: dict[str, str] = field(default_factory=dict)
    tls: dict[str, Any] = field(default_factory=dict)  # TLSOptions field -> value
    line: int = 0

    def __repr__(self) -> str:  # header values may be secrets
        return f"FileInstance(name={self.name!r}, url={self.url!r}, gpu_uuid={self.gpu_uuid!r})"


@dataclass(frozen=True)
class FileConfig:
    """What a config file says: parser defaults keyed by argparse ``dest``, and the instances."""

    path: str
    defaults: dict[str, Any]
    instances: tuple[FileInstance, ...]


def find_config_path(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """``--config PATH`` (or ``--config=PATH``) from argv, else ``COMFYUI_EXPORTER_CONFIG``."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(list(argv))
    return known.config or environ.get(ENV_CONFIG) or None


def load_config_file(path: str | Path) -> FileConfig:
    """Read and validate the whole file; ``ConfigError`` names file, line and key."""
    root, _raw = load_file(path)
    base = Path(path).resolve().parent
    top = root.fields(TOP_KEYS)
    d: dict[str, Any] = {}
    if "listen" in top:
        value = top["listen"].as_str(allow_empty=False)
        try:
            parse_listen(value)
        except ConfigError as exc:
            raise top["listen"].error(_strip_flag(exc)) from None
        d["listen"] = value
    for key in ("poll_interval", "system_stats_interval", "request_timeout"):
        if key in top:
            d[key] = top[key].number(positive=True)
    for key in ("debounce", "min_poll_interval"):
        if key in top:
            d[key] = top[key].number(non_negative=True)
    for key in ("history_max_items", "history_baseline_items", "max_response_bytes"):
        if key in top:
            d[key] = top[key].as_int(minimum=1)
    if "gpu" in top:
        gpu = top["gpu"].fields(("enabled", "expected_count"))
        if "enabled" in gpu:
            d["no_gpu"] = not gpu["enabled"].as_bool()
        if "expected_count" in gpu:
            d["gpu_expected_count"] = gpu["expected_count"].as_int(minimum=0)
    if "web" in top:
        web = top["web"].fields(("config_file", "disable_failures", "failures_require_auth", "external_url"))
        if "external_url" in web:
            d["web_external_url"] = web["external_url"].as_str(allow_empty=False)
        if "config_file" in web:
            d["web_config_file"] = _readable(web["config_file"], base)
        if "disable_failures" in web:
            d["web_disable_failures"] = web["disable_failures"].as_bool()
        if "failures_require_auth" in web:
            d["web_failures_require_auth"] = web["failures_require_auth"].as_bool()
    if "log" in top:
        log = top["log"].fields(("level", "format"))
        if "level" in log:
            d["log_level"] = log["level"].choice(LOG_LEVELS)
        if "format" in log:
            d["log_format"] = log["format"].choice(LOG_FORMATS)
    if "defaults" in top:
        defaults = top["defaults"].fields(("headers", "header_files", "tls"))
        if "headers" in defaults:
            d["comfyui_header"] = [f"{k}: {v}" for k, v in _headers(defaults["headers"]).items()]
        if "header_files" in defaults:
            files = _header_files(defaults["header_files"], base)
            d["comfyui_header_file"] = [f"{name}:{path}" for name, (path, _value) in files.items()]
        if "tls" in defaults:
            tls = _tls(defaults["tls"], base)
            for key, dest in (
                ("ca_file", "comfyui_ca_file"),
                ("cert_file", "comfyui_client_cert"),
                ("key_file", "comfyui_client_key"),
            ):
                if key in tls:
                    d[dest] = tls[key]
            if "insecure_skip_verify" in tls:
                d["comfyui_insecure_skip_verify"] = tls["insecure_skip_verify"]
    if "alertmanager" in top:
        d.update(_alertmanager(top["alertmanager"], base))
    instances = tuple(_instances(top["instances"], base)) if "instances" in top else ()
    return FileConfig(str(path), d, instances)


def prepare(
    parser: argparse.ArgumentParser, argv: Sequence[str], environ: Mapping[str, str]
) -> FileConfig | None:
    """Find, load and apply the config file before ``parser.parse_args`` (None: no file given)."""
    path = find_config_path(argv, environ)
    if path is None:
        return None
    config = load_config_file(path)
    apply_to_parser(parser, config)
    return config


def instances_for(
    config: FileConfig | None, args: argparse.Namespace, tls: TLSOptions
) -> tuple[InstanceConfig, ...] | None:
    """The file's instances, or None when flags/environment name the URLs (or the file names none)."""
    if config is None or args.comfyui_url or not config.instances:
        return None
    return build_file_instances(config, args.comfyui_header, args.comfyui_header_file, tls)


def apply_to_parser(parser: argparse.ArgumentParser, config: FileConfig) -> None:
    """Make the file's values the parser's defaults, so flags and environment still win."""
    parser.set_defaults(**config.defaults)


def build_file_instances(
    config: FileConfig, headers: Sequence[str], header_files: Sequence[str], tls: TLSOptions
) -> tuple[InstanceConfig, ...]:
    """The file's instances on top of the common settings that flags, environment and file made.

    ``headers``/``header_files``/``tls`` are the parsed ``--comfyui-header``/``--comfyui-header-file``
    and TLS flags (which already include the file's ``defaults`` through :func:`apply_to_parser`).
    An instance's own header or TLS field wins over the common one: the more specific setting wins.
    """
    common = dict(parse_header(h) for h in headers)
    common.update(parse_header_file(h) for h in header_files)
    out = []
    for instance in config.instances:
        instance_tls = dataclasses.replace(tls, **instance.tls)
        if instance_tls.key_file and not instance_tls.cert_file:
            raise ConfigError(
                f"{config.path}:{instance.line}: instance {instance.name!r}: "
                "tls.client_key needs a client_cert"
            )
        out.append(
            InstanceConfig(
                name=instance.name,
                url=instance.url,
                gpu_uuid=instance.gpu_uuid,
                headers={**common, **instance.headers},
                tls=instance_tls,
            )
        )
    return tuple(out)


# -- pieces ----------------------------------------------------------------------------------------------
def _strip_flag(exc: ConfigError) -> str:
    """config.py's messages start with the flag (``--listen: …``); in a file the key says it."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("--") and ": " in text else text


def _readable(node: Node, base: Path) -> str:
    path = node.path(base)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise node.error(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _headers(node: Node) -> dict[str, str]:
    out = {}
    for name, value in node.items():
        try:
            parse_header(f"{name}: x")
        except ConfigError:
            raise value.error("not a valid header name") from None
        text = value.as_str()
        if "\n" in text or "\r" in text:
            raise value.error("a header value must be one line")
        out[name] = text.strip()
    return out


def _header_files(node: Node, base: Path) -> dict[str, tuple[str, str]]:
    """name -> (absolute path, value read now); the file must exist and hold one line."""
    out = {}
    for name, value in node.items():
        path = _readable(value, base)
        try:
            _, content = parse_header_file(f"{name}:{path}")
        except ConfigError as exc:
            raise value.error(_strip_flag(exc)) from None
        out[name] = (path, content)
    return out


def _tls(node: Node, base: Path) -> dict[str, Any]:
    fields = node.fields(TLS_KEYS)
    out: dict[str, Any] = {}
    for key, target in _TLS_FIELDS.items():
        if key in fields:
            out[target] = _readable(fields[key], base)
    if "insecure_skip_verify" in fields:
        out["insecure_skip_verify"] = fields["insecure_skip_verify"].as_bool()
    return out


def _alertmanager(node: Node, base: Path) -> dict[str, Any]:
    """``alertmanager: {urls, event_ttl, cooldown, timeout, basic_auth, bearer_token_file, tls}``."""
    keys = ("urls", "labels", "event_ttl", "cooldown", "timeout", "basic_auth", "bearer_token_file", "tls")
    f = node.fields(keys)
    d: dict[str, Any] = {}
    if "urls" in f:
        urls = []
        for item in f["urls"].as_list():
            try:
                urls.append(parse_alertmanager_url(item.as_str(allow_empty=False)))
            except ConfigError as exc:
                raise item.error(_strip_flag(exc)) from None
        d["alertmanager_url"] = urls
    if "labels" in f:
        labels = []
        for name, value in f["labels"].items():
            try:
                labels.append("=".join(parse_alert_label(f"{name}={value.as_str()}")))
            except ConfigError as exc:
                raise value.error(_strip_flag(exc)) from None
        d["alertmanager_label"] = labels
    for key in ("event_ttl", "cooldown", "timeout"):
        if key in f:
            value = f[key].as_str(allow_empty=False)  # "300" (seconds) or "5m"
            try:
                parse_duration(value, key)
            except ConfigError as exc:
                raise f[key].error(_strip_flag(exc)) from None
            d[f"alertmanager_{key}"] = str(value)
    if "basic_auth" in f:
        auth = f["basic_auth"].fields(("username", "password_file"))
        if "username" in auth:
            d["alertmanager_basic_auth_username"] = auth["username"].as_str(allow_empty=False)
        if "password_file" in auth:
            d["alertmanager_basic_auth_password_file"] = _readable(auth["password_file"], base)
    if "bearer_token_file" in f:
        d["alertmanager_bearer_token_file"] = _readable(f["bearer_token_file"], base)
    if "tls" in f:
        tls = _tls(f["tls"], base)
        for key, dest in (("ca_file", "ca_file"), ("cert_file", "cert_file"), ("key_file", "key_file")):
            if key in tls:
                d[f"alertmanager_{dest}"] = tls[key]
        if "insecure_skip_verify" in tls:
            d["alertmanager_insecure_skip_verify"] = tls["insecure_skip_verify"]
    return d


def _instances(node: Node, base: Path) -> list[FileInstance]:
    out: list[FileInstance] = []
    names: dict[str, int] = {}
    for item in node.as_list():
        f = item.fields(INSTANCE_KEYS)
        if "url" not in f:
            raise item.error("url is required")
        url_node = f["url"]
        try:
            default_name, url, gpu = parse_instance(url_node.as_str(allow_empty=False), "--url")
        except ConfigError as exc:
            raise url_node.error(_strip_flag(exc)) from None
        if gpu is not None:
            raise url_node.error("give the GPU as gpu: GPU-… rather than in the URL")
        name = f["name"].as_str(allow_empty=False).strip() if "name" in f else default_name
        if name in names:
            node_for_error = f.get("name") or url_node
            raise node_for_error.error(f"instance name {name!r} is also used at line {names[name]}")
        names[name] = item.line
        if "gpu" in f:
            gpu = f["gpu"].as_str(allow_empty=False).strip()
            if not gpu.startswith(("GPU-", "MIG-")):
                raise f["gpu"].error(f"expected an NVML uuid (GPU-… or MIG-…), got {gpu!r}")
        headers = _headers(f["headers"]) if "headers" in f else {}
        if "header_files" in f:
            headers.update({k: v for k, (_p, v) in _header_files(f["header_files"], base).items()})
        tls = _tls(f["tls"], base) if "tls" in f else {}
        out.append(FileInstance(name, url, gpu, headers, tls, item.line))
    return out
