"""What the stack is told: flags for ports, binaries and the demo; a settings file and
``COMFYUI_STACK_*`` environment variables for where notifications go (robots, Slack, e-mail).

Secrets come only from the environment or from files (``*_FILE``): a settings file may name files,
and a value given in the environment is written under the state folder's ``secrets/`` (mode 0600),
never into a rendered config.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "COMFYUI_STACK_"


def _repo() -> Path:
    """The checkout whose prometheus/ and alertmanager/ the stack renders (editable install or cwd)."""
    here = Path(__file__).resolve().parents[3]
    for candidate in (here, Path.cwd()):
        if (candidate / "prometheus" / "prometheus.yml").is_file():
            return candidate
    return here


REPO = _repo()

# name -> (what it is, is it a secret). Secrets also accept NAME_FILE.
KEYS: dict[str, tuple[str, bool]] = {
    "COMFYUI_URL": ("ComfyUI to watch without --demo (default http://127.0.0.1:8188)", False),
    "DINGTALK_URL": ("DingTalk robot webhook URL (…/robot/send?access_token=…)", True),
    "DINGTALK_SECRET": ("DingTalk robot signing secret (加签, SEC…)", True),
    "DINGTALK_KEYWORD": ("DingTalk custom keyword, if the robot uses one", False),
    "WECOM_URL": ("WeCom robot webhook URL (…/webhook/send?key=…)", True),
    "FEISHU_URL": ("Feishu bot webhook URL (…/bot/v2/hook/…)", True),
    "FEISHU_SECRET": ("Feishu bot signing secret (签名校验)", True),
    "FEISHU_KEYWORD": ("Feishu custom keyword, if the bot uses one", False),
    "SLACK_WEBHOOK_URL": ("Slack incoming-webhook URL", True),
    "SMTP_SMARTHOST": ("SMTP server host:port for the critical e-mail page", False),
    "SMTP_FROM": ("sender address", False),
    "SMTP_TO": ("recipient address(es), comma-separated", False),
    "SMTP_USERNAME": ("SMTP user (AUTH)", False),
    "SMTP_PASSWORD": ("SMTP password", True),
    "SMTP_REQUIRE_TLS": ("true (default) or false", False),
}
ROBOTS = ("dingtalk", "wecom", "feishu")
DEFAULT_PORTS = {"exporter": 9188, "prometheus": 9090, "alertmanager": 9093, "relay": 9189, "notify": 9199}


class SettingsError(ValueError):
    """A bad setting, named by its key."""


@dataclass(frozen=True)
class Secret:
    """A secret either as a file the user keeps (``path``) or a value to write under secrets/."""

    path: Path | None = None
    value: str | None = None


@dataclass
class Settings:
    values: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def robots(self) -> list[str]:
        """Robot kinds with a URL configured, in a fixed order."""
        return [kind for kind in ROBOTS if f"{kind.upper()}_URL" in self.secrets]

    def smtp(self) -> bool:
        return bool(self.get("SMTP_SMARTHOST"))


def read_settings_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes, optional ``COMFYUI_STACK_`` prefix)."""
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip().removeprefix(ENV_PREFIX)
        if not sep or not key:
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        out[key] = value.strip().strip("'\"")
    return out


def load_settings(file: Path | None, env: Mapping[str, str]) -> Settings:
    """Settings from ``file`` (if any), overridden by ``COMFYUI_STACK_*`` variables."""
    from_file = read_settings_file(file) if file else {}
    env_keys = {k[len(ENV_PREFIX) :] for k in env if k.startswith(ENV_PREFIX)}
    merged = dict(from_file)
    for key in env_keys:  # the environment wins, in either form (X or X_FILE)
        merged.pop(key.removesuffix("_FILE"), None)
        merged.pop(key.removesuffix("_FILE") + "_FILE", None)
    merged.update({k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    merged.pop("SETTINGS", None)
    known = {*KEYS, *(f"{k}_FILE" for k, (_, secret) in KEYS.items() if secret)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise SettingsError(f"unknown setting {ENV_PREFIX}{unknown[0]} (known: {', '.join(sorted(KEYS))})")
    settings = Settings()
    for key, (_, secret) in KEYS.items():
        value, file_value = merged.get(key, ""), merged.get(f"{key}_FILE", "")
        if not secret:
            if value:
                settings.values[key] = value
            continue
        if value and file_value:
            raise SettingsError(f"{ENV_PREFIX}{key}: give it or {key}_FILE, not both")
        if file_value:
            path = Path(file_value).expanduser()
            if not path.is_file():
                raise SettingsError(f"{ENV_PREFIX}{key}_FILE: {path} is not a file")
            settings.secrets[key] = Secret(path=path.resolve())
        elif value:
            if key in from_file and key not in env_keys:
                raise SettingsError(
                    f"{key} in {file}: secrets are never written in a settings file; use {key}_FILE"
                )
            settings.secrets[key] = Secret(value=value)
    for kind in ("DINGTALK", "FEISHU"):
        if f"{kind}_SECRET" in settings.secrets and f"{kind}_URL" not in settings.secrets:
            raise SettingsError(f"{ENV_PREFIX}{kind}_SECRET is set but {kind}_URL is not")
    if settings.smtp() and not (settings.get("SMTP_FROM") and settings.get("SMTP_TO")):
        raise SettingsError(f"{ENV_PREFIX}SMTP_SMARTHOST needs SMTP_FROM and SMTP_TO")
    if settings.get("SMTP_REQUIRE_TLS", "true").lower() not in ("true", "false"):
        raise SettingsError(f"{ENV_PREFIX}SMTP_REQUIRE_TLS must be true or false")
    return settings


def build_parser() -> argparse.ArgumentParser:
    lines = [f"  {ENV_PREFIX}{k}{'[_FILE]' if secret else ''}  {what}" for k, (what, secret) in KEYS.items()]
    p = argparse.ArgumentParser(
        prog="./scripts/run --stack",
        description="Run the exporter, Prometheus, Alertmanager and the alert relay on 127.0.0.1 "
        "(no Docker). Notifications: see 'Without Docker' in docs/deploy.md. Flags the stack does "
        "not know are passed to the exporter.",
        epilog="settings (environment, or KEY=VALUE lines in ./stack.env; secrets as *_FILE paths):\n"
        + "\n".join(lines)
        + "\nWith none: notifications in <state-dir>/notifications.log and the relay's journal.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--demo", action="store_true", help="watch the bundled ComfyUI simulator instead of a real ComfyUI")
    a("--demo-port", type=int, default=0, help="simulator port (default: a free one)")
    a("--state-dir", type=Path, default=REPO / ".stack", help="configs, data and logs (default %(default)s)")
    a("--settings", type=Path, default=None, help="KEY=VALUE settings file (default ./stack.env if present)")
    a("--profile", choices=["fast", "default"], default="fast", help="alerting speed (default %(default)s)")
    a("--prometheus-bin", help="Prometheus binary (default: prometheus on PATH)")
    a("--alertmanager-bin", help="Alertmanager binary (default: prometheus-alertmanager or alertmanager)")
    for name, port in DEFAULT_PORTS.items():
        a(f"--{name}-port", type=int, default=port, help=f"{name} port on 127.0.0.1 (default %(default)s)")
    a("--check", action="store_true", help="render the configs, check ports and binaries, then exit")
    return p


@dataclass
class Options:
    args: argparse.Namespace
    exporter_args: list[str]
    settings: Settings

    def port(self, name: str) -> int:
        return int(getattr(self.args, f"{name}_port"))


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Options:
    """Flags (``--demo`` anywhere; unknown flags go to the exporter) plus settings."""
    env = os.environ if env is None else env
    args, rest = build_parser().parse_known_args([a for a in argv if a != "--stack"])
    if rest[:1] == ["--"]:
        rest = rest[1:]
    file = args.settings or (
        Path(env["COMFYUI_STACK_SETTINGS"]) if env.get("COMFYUI_STACK_SETTINGS") else None
    )
    if file is None and (REPO / "stack.env").is_file():
        file = REPO / "stack.env"
    if file is not None and not file.is_file():
        raise SettingsError(f"--settings: {file} is not a file")
    return Options(args, rest, load_settings(file, env))
