"""relay.yml: parse, validate (naming the offending key) and resolve secrets from files or env.

Validation happens once at start-up and on every reload, so that a typo is reported as
``targets.ops-dingtalk.secrt_file: unknown key (did you mean secret_file?)`` instead of surfacing at
3 a.m. as an undelivered alert. Secrets are read here and wrapped in :class:`Secret` immediately.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .redact import REDACTOR, Secret

ROBOT_TYPES = ("dingtalk", "wecom", "feishu")
LANGUAGES = ("zh", "en")
# The robots' published limits; a config may go lower, never higher (that only earns a ban).
ROBOT_RATE_DEFAULTS: dict[str, dict[str, int | None]] = {
    "dingtalk": {"per_minute": 20, "per_second": None, "burst": 5},
    "wecom": {"per_minute": 20, "per_second": None, "burst": 5},
    "feishu": {"per_minute": 100, "per_second": 5, "burst": 5},
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


class ConfigError(ValueError):
    """A config problem; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key


@dataclass(frozen=True)
class Mention:
    mobiles: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    all_on_critical: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.mobiles or self.user_ids or self.all_on_critical)


@dataclass(frozen=True)
class RateLimit:
    per_minute: int
    per_second: int | None
    burst: int


@dataclass(frozen=True)
class TargetConfig:
    """One robot target; ``url`` and ``secret`` stay wrapped until a robot client signs a request."""

    name: str
    type: str
    url: Secret
    secret: Secret | None
    keyword: str | None
    mention: Mention
    language: str
    timezone: str
    rate_limit: RateLimit


@dataclass(frozen=True)
class JournalConfig:
    path: Path
    max_bytes: int = 50 * 1024 * 1024
    backups: int = 5
    fsync: bool = False  # flush survives a relay crash; fsync also a power loss, at a latency cost


@dataclass(frozen=True)
class DeliveryConfig:
    deadline_seconds: float = 8.0  # keep below Alertmanager's webhook timeout (>= 10 s in 0.25)
    attempt_timeout_seconds: float = 4.0
    backoff_initial_seconds: float = 0.25
    backoff_max_seconds: float = 2.0
    max_parts: int = 3  # a notification too big for one robot message is split into at most this many
    duplicate_window_seconds: float = 600.0  # see dedup.py; 0 turns idempotency off; < repeat_interval


@dataclass(frozen=True)
class RelayConfig:
    """The whole validated relay.yml."""

    listen_host: str
    listen_port: int
    auth_token: Secret
    journal: JournalConfig
    exporter_failures_url: str | None
    exporter_failures_timeout: float
    delivery: DeliveryConfig
    timezone: str
    templates_dir: Path | None
    targets: dict[str, TargetConfig] = field(default_factory=dict)
    web_config_file: Path | None = None  # exporter-toolkit web config: TLS, basic auth on GETs, headers
    disabled_targets: dict[str, str] = field(default_factory=dict)  # optional targets without a URL: why

    def secrets(self) -> list[Secret]:
        """Every secret value in this config, for registration with the log redactor."""
        out = [self.auth_token]
        for t in self.targets.values():
            out.append(t.url)
            if t.secret is not None:
                out.append(t.secret)
        return out


class _Section:
    """A mapping plus its dotted path; remembers which keys were read so unknown keys can be named."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path, f"must be a mapping, got {type(data).__name__}")
        self.data, self.path, self.used = data, path, set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        value = self.data.get(name, default)
        return default if value is None else value

    def str(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.key(name), "must be a non-empty string")
        return value.strip()

    def number(self, name: str, default: float, minimum: float = 0.0, integer: bool = False) -> Any:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number, got {value!r}")
        if integer and int(value) != value:
            raise ConfigError(self.key(name), f"must be a whole number, got {value!r}")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be >= {minimum}, got {value!r}")
        return int(value) if integer else float(value)

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {value!r}")
        return value

    def str_list(self, name: str) -> tuple[str, ...]:
        value = self.raw(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(str(v) for v in value)

    def section(self, name: str) -> _Section:
        return _Section(self.raw(name), self.key(name))

    def finish(self) -> None:
        for name in self.data:
            if name not in self.used:
                hint = difflib.get_close_matches(str(name), sorted(self.used), n=1)
                extra = f" (did you mean {hint[0]}?)" if hint else ""
                raise ConfigError(self.key(str(name)), f"unknown key{extra}")


def parse_size(value: Any, key: str) -> int:
    """Bytes from ``52428800``, ``"50MB"`` or ``"50MiB"`` (K/M/G are binary multiples either way)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ConfigError(key, "must be > 0")
        return value
    match = _SIZE_RE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ConfigError(key, f"must be a size like 50MB, got {value!r}")
    unit = (match.group(2) or "b").lower()[0]
    size = int(float(match.group(1)) * {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])
    if size <= 0:
        raise ConfigError(key, "must be > 0")
    return size


def _read_secret(
    sec: _Section, name: str, env: Mapping[str, str], base: Path, required: bool
) -> Secret | None:
    """``<name>_file`` or ``<name>_env`` (exactly one); errors name the key and path, never the value."""
    file_key, env_key = f"{name}_file", f"{name}_env"
    file_name, env_name = sec.str(file_key), sec.str(env_key)
    if name in sec.data:
        sec.used.add(name)
        raise ConfigError(sec.key(name), f"inline secrets are not accepted; use {file_key} or {env_key}")
    if file_name and env_name:
        raise ConfigError(sec.key(file_key), f"set only one of {file_key} and {env_key}")
    if file_name:
        path = Path(file_name) if Path(file_name).is_absolute() else base / file_name
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(sec.key(file_key), f"cannot read {path}: {exc.strerror or exc}") from None
        if not value:
            raise ConfigError(sec.key(file_key), f"file {path} is empty")
        return Secret(value, f"file {path}")
    if env_name:
        value = env.get(env_name, "").strip()
        if not value:
            raise ConfigError(sec.key(env_key), f"environment variable {env_name} is unset or empty")
        return Secret(value, f"env {env_name}")
    if required:
        raise ConfigError(sec.key(file_key), f"is required (or {env_key})")
    return None


def _timezone(value: str, key: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"unknown time zone {value!r}") from None
    return value


def _url_absent(sec: _Section, env: Mapping[str, str], base: Path) -> str:
    """Why an ``optional`` target has no URL ("" if it has one): its url_file or url_env is missing."""
    file_name, env_name = sec.data.get("url_file"), sec.data.get("url_env")
    if isinstance(file_name, str) and file_name.strip() and not env_name:
        path = Path(file_name.strip())
        path = path if path.is_absolute() else base / path
        try:
            if not path.read_text(encoding="utf-8").strip():
                return f"url_file {path} is empty"
        except FileNotFoundError:
            return f"url_file {path} does not exist"
        except OSError:
            return ""  # unreadable: _read_secret reports it as an error
    env_key = env_name.strip() if isinstance(env_name, str) else ""
    if env_key and not file_name and not env.get(env_key, "").strip():
        return f"environment variable {env_key} is unset or empty"
    return ""


def _parse_target(
    name: str, sec: _Section, env: Mapping[str, str], base: Path, tz: str
) -> tuple[TargetConfig, str]:
    """The target, and why it is disabled ("" when enabled; only ``optional: true`` targets can be)."""
    kind = sec.str("type", required=True)
    if kind not in ROBOT_TYPES:
        raise ConfigError(sec.key("type"), f"must be one of {', '.join(ROBOT_TYPES)}, got {kind!r}")
    disabled = _url_absent(sec, env, base) if sec.bool("optional", False) else ""
    if disabled:  # validate the rest of the section, but read none of its secrets
        sec.used.update({"url_file", "url_env", "secret_file", "secret_env"})
        url, secret = Secret("http://disabled.invalid/", "disabled"), None
    else:
        url_or_none = _read_secret(sec, "url", env, base, required=True)
        assert url_or_none is not None
        url = url_or_none
        parts = urlsplit(url.reveal())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(sec.key("url_file"), f"does not hold an http(s) URL ({url.source})")
        secret = None if kind == "wecom" else _read_secret(sec, "secret", env, base, required=False)
    keyword = None if kind == "wecom" else sec.str("keyword")
    language = sec.str("language", "zh")
    if language not in LANGUAGES:
        raise ConfigError(sec.key("language"), f"must be one of {', '.join(LANGUAGES)}, got {language!r}")
    m = sec.section("mention")
    mention = Mention(
        mobiles=m.str_list("mobiles") if kind != "feishu" else (),
        user_ids=m.str_list("user_ids"),
        all_on_critical=m.bool("all_on_critical", False),
    )
    m.finish()
    defaults = ROBOT_RATE_DEFAULTS[kind]
    r = sec.section("rate_limit")
    per_minute = r.number("per_minute", defaults["per_minute"], 1, integer=True)
    per_second_raw = r.raw("per_second", defaults["per_second"])
    per_second = None if per_second_raw is None else r.number("per_second", per_second_raw, 1, integer=True)
    burst = r.number("burst", min(defaults["burst"] or 1, per_minute), 1, integer=True)
    r.finish()
    for key, value, limit in (
        ("per_minute", per_minute, defaults["per_minute"]),
        ("per_second", per_second, defaults["per_second"]),
    ):
        if value is not None and limit is not None and value > limit:
            raise ConfigError(r.key(key), f"{value} is above the {kind} robot's limit of {limit}")
    if burst > per_minute:
        raise ConfigError(r.key("burst"), f"must be <= per_minute ({per_minute})")
    target_tz = _timezone(sec.str("timezone", tz) or tz, sec.key("timezone"))
    sec.finish()
    target = TargetConfig(
        name,
        kind,
        url,
        secret,
        keyword,
        mention,
        language,
        target_tz,
        RateLimit(per_minute, per_second, burst),
    )
    return target, disabled


def parse_config(
    data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> RelayConfig:
    """Validate a loaded YAML document and resolve its secrets; raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    base = base_dir or Path.cwd()
    top = _Section(data, "")
    listen = top.str("listen", "0.0.0.0:9189") or ""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError("listen", f"must be host:port, got {listen!r}")
    token = _read_secret(top, "auth_token", env, base, required=True)
    assert token is not None
    j = top.section("journal")
    journal_path = j.str("path", required=True) or ""
    journal = JournalConfig(
        path=Path(journal_path) if Path(journal_path).is_absolute() else base / journal_path,
        max_bytes=parse_size(j.raw("max_bytes", "50MB"), j.key("max_bytes")),
        backups=j.number("backups", 5, 0, integer=True),
        fsync=j.bool("fsync", False),
    )
    j.finish()
    failures_url = top.str("exporter_failures_url")
    if failures_url and urlsplit(failures_url).scheme not in ("http", "https"):
        raise ConfigError("exporter_failures_url", "must be an http(s) URL")
    failures_timeout = top.number("exporter_failures_timeout", 1.0, 0.05)
    d = top.section("delivery")
    delivery = DeliveryConfig(
        deadline_seconds=d.number("deadline_seconds", 8.0, 0.2),
        attempt_timeout_seconds=d.number("attempt_timeout_seconds", 4.0, 0.1),
        backoff_initial_seconds=d.number("backoff_initial_seconds", 0.25, 0.01),
        backoff_max_seconds=d.number("backoff_max_seconds", 2.0, 0.01),
        max_parts=d.number("max_parts", 3, 1, integer=True),
        duplicate_window_seconds=d.number("duplicate_window_seconds", 600.0, 0.0),
    )
    d.finish()
    if delivery.duplicate_window_seconds > 3600:
        raise ConfigError(
            "delivery.duplicate_window_seconds",
            "must be <= 3600 and shorter than Alertmanager's repeat_interval (a repeat reminder must "
            "not be taken for a duplicate)",
        )
    if delivery.max_parts > 10:
        raise ConfigError("delivery.max_parts", "must be <= 10")
    tz = _timezone(top.str("timezone", "UTC") or "UTC", "timezone")
    templates = top.str("templates_dir")
    templates_dir = None
    if templates:
        templates_dir = Path(templates) if Path(templates).is_absolute() else base / templates
        if not templates_dir.is_dir():
            raise ConfigError("templates_dir", f"{templates_dir} is not a directory")
    web_config = top.str("web_config_file")
    web_config_file = None
    if web_config:
        web_config_file = Path(web_config) if Path(web_config).is_absolute() else base / web_config
        if not web_config_file.is_file():
            raise ConfigError("web_config_file", f"{web_config_file} is not a file")
    t = top.section("targets")
    if not t.data:
        raise ConfigError("targets", "at least one target is required")
    targets, disabled = {}, {}
    for name in t.data:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(t.key(str(name)), "target names may use only letters, digits, _ . -")
        target, why = _parse_target(name, t.section(name), env, base, tz)
        if why:
            disabled[name] = why
        else:
            targets[name] = target
    top.finish()
    config = RelayConfig(
        host or "0.0.0.0",
        int(port_text),
        token,
        journal,
        failures_url,
        failures_timeout,
        delivery,
        tz,
        templates_dir,
        targets,
        web_config_file,
        disabled,
    )
    for secret in config.secrets():
        REDACTOR.register(secret)
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> RelayConfig:
    """Read and validate a relay.yml; relative paths inside it resolve against its directory."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from None
    return parse_config(data, env, path.parent)
