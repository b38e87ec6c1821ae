"""Typed configuration and the parsing of instance specs and headers.

A bad value fails at start-up with the flag (or environment variable) named; a *reachable-or-not*
problem with ComfyUI is never a configuration error (the exporter runs with ``comfyui_up 0``).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8188"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the offending flag or key."""


@dataclass(frozen=True)
class TLSOptions:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    def ssl_context(self) -> ssl.SSLContext:
        """The websocket client's TLS settings, equal to what ``requests`` gets for HTTP."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    url: str
    gpu_uuid: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tls: TLSOptions = field(default_factory=TLSOptions)

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/ws"

    def __repr__(self) -> str:  # headers may hold secrets: never print their values
        return f"InstanceConfig(name={self.name!r}, url={self.url!r}, gpu_uuid={self.gpu_uuid!r})"


@dataclass(frozen=True)
class AlertmanagerConfig:
    """Where event alerts go (``--alertmanager.*``); no URL: the event path is off."""

    urls: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # added to every event alert (e.g. chat=dingtalk)
    event_ttl: float = 300.0
    cooldown: float = 300.0
    timeout: float = 10.0
    basic_auth_username: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    tls: TLSOptions = field(default_factory=TLSOptions)
    queue_capacity: int = 10_000
    batch_size: int = 64

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


def parse_duration(value: str | float, flag: str) -> float:
    """``300``, ``1.5``, ``250ms``, ``30s``, ``5m``, ``1h`` → seconds (Prometheus-style units)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        unit = next((u for u in ("ms", "s", "m", "h") if text.endswith(u)), "")
        try:
            seconds = float(text[: len(text) - len(unit)]) * units.get(unit, 1.0)
        except ValueError:
            raise ConfigError(f"{flag}: expected a duration like 30s or 5m, got {value!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{flag}: must be positive, got {value!r}")
    return seconds


def parse_alertmanager_url(spec: str, flag: str = "--alertmanager.url") -> str:
    parts = urlsplit(spec.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag}: {spec!r} is not an http(s) URL (expected http://host:9093)")
    if parts.username or parts.password:
        raise ConfigError(f"{flag}: put credentials in --alertmanager.basic-auth-* files, not in the URL")
    return spec.strip().rstrip("/")


def parse_alert_label(spec: str, flag: str = "--alertmanager.label") -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    name = name.strip()
    valid = bool(name) and (name[0].isalpha() or name[0] == "_") and name.replace("_", "a").isalnum()
    if not sep or not valid:
        raise ConfigError(f"{flag}: expected NAME=VALUE with a Prometheus label name, got {spec!r}")
    if name in ("alertname", "comfyui", "error_type", "severity", "node_type", "event_window", "occurrence"):
        raise ConfigError(f"{flag}: {name} is set by the exporter itself")
    return name, value.strip()


def read_secret_file(path: str, flag: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{flag}: the file must hold one line")
    return value


@dataclass(frozen=True)
class ExporterConfig:
    instances: tuple[InstanceConfig, ...]
    listen_host: str = "0.0.0.0"
    listen_port: int = 9188
    poll_interval: float = 5.0
    debounce: float = 0.1
    min_poll_interval: float = 0.25
    system_stats_interval: float = 15.0
    request_timeout: float = 10.0
    history_baseline_items: int = 32
    history_max_items: int = 512
    max_response_bytes: int = 256 * 1024 * 1024
    gpu_enabled: bool = True
    gpu_expected_count: int | None = None
    web_config_file: str | None = None
    failures_enabled: bool = True
    failures_require_auth: bool = False
    plugin_enabled: bool = True
    plugin_token: str | None = field(default=None, repr=False)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    external_url: str | None = None  # --web.external-url as given; see public_url

    @property
    def public_url(self) -> str:
        """Where people reach this exporter (the /failures link in event alerts): --web.external-url,
        else derived from the listen address at use, so a --listen change is one change, not two."""
        if self.external_url:
            return self.external_url
        host = self.listen_host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname() or "localhost"  # as Prometheus does (os.Hostname); no DNS lookup
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.listen_port}"


def parse_instance(spec: str, flag: str = "--comfyui-url") -> tuple[str, str, str | None]:
    """``[NAME=]URL[@GPU-uuid]`` → (name, url, gpu uuid); the default name is ``host:port``."""
    name = None
    rest = spec.strip()
    if "=" in rest.split("://", 1)[0]:
        name, rest = rest.split("=", 1)
        name = name.strip()
        if not name:
            raise ConfigError(f"{flag}: empty instance name in {spec!r}")
    gpu = None
    if "@GPU-" in rest or "@MIG-" in rest:
        rest, gpu = rest.rsplit("@", 1)
    parts = urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{flag}: {spec!r} is not an http(s) URL (expected [NAME=]http://host:port[@GPU-uuid])"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{flag}: {spec!r} has an invalid port") from None
    return name or f"{parts.hostname}:{port}", rest.rstrip("/"), gpu


def parse_header(spec: str, flag: str = "--comfyui-header") -> tuple[str, str]:
    name, sep, value = spec.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise ConfigError(f"{flag}: expected 'Name: value', got a value without a valid header name")
    return name.strip(), value.strip()


def parse_header_file(spec: str, flag: str = "--comfyui-header-file") -> tuple[str, str]:
    """``Name:/path`` → the header with its value read from the file (for tokens kept out of argv)."""
    name, path = parse_header(spec, flag)
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read the file for header {name!r}: {exc.strerror}") from None
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{flag}: the file for header {name!r} must hold one line")
    return name, value


def parse_listen(value: str, flag: str = "--listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{flag}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def build_instances(
    urls: list[str], headers: list[str], header_files: list[str], tls: TLSOptions
) -> tuple[InstanceConfig, ...]:
    common = dict(parse_header(h) for h in headers)
    common.update(parse_header_file(h) for h in header_files)
    seen: set[str] = set()
    instances = []
    for spec in urls or [DEFAULT_URL]:
        name, url, gpu = parse_instance(spec)
        if name in seen:
            raise ConfigError(f"--comfyui-url: instance name {name!r} is used twice; name them NAME=URL")
        seen.add(name)
        instances.append(InstanceConfig(name=name, url=url, gpu_uuid=gpu, headers=common, tls=tls))
    return tuple(instances)
