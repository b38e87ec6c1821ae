"""``comfyui-exporter doctor``: check each configured ComfyUI and the host; say what is wrong and the fix.

It reads the same flags, environment and ``--config`` file as the exporter (``config.args.parse_config``)
and asks each ComfyUI what the exporter will ask: ``/system_stats``, the websocket and its first
``status`` broadcast, ``/history?max_items=1``, ``/api/jobs`` and the optional plugin route. Then the
host: NVML and its GPUs, which GPU each instance runs on, the web config and the listen address.
Each problem comes with a fix (docs/troubleshooting.md explains them). Exit 1 when something is
broken (the exporter would not see outcomes, or would not start), 0 with warnings, 2 for bad flags.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from ..config.settings import ConfigError, ExporterConfig, InstanceConfig
from ..sources.client import make_session
from . import doctor_host
from .doctor_check import FAIL, INFO, OK, SKIP, WARN, Check

PLUGIN_PATH = "/comfyui-exporter/v1/events"
DOCTOR_USAGE = """usage: comfyui-exporter doctor [exporter flags]

Check each configured ComfyUI (/system_stats, the websocket, /history, /api/jobs, the plugin route)
and this host (NVML and GPUs, the web config, the listen address) the way the exporter will use them,
and print what is wrong with the fix for each problem (docs/troubleshooting.md).

It takes the exporter's flags, COMFYUI_EXPORTER_* variables and --config file (comfyui-exporter
--help), e.g.  comfyui-exporter doctor --comfyui-url http://127.0.0.1:8188

Exit status: 0 all good or only warnings, 1 something is broken, 2 bad flags."""


@dataclass
class InstanceReport:
    checks: list[Check]
    system_stats: dict[str, Any] | None  # for the GPU mapping


def main(argv: Sequence[str]) -> int:
    """Entry point of ``comfyui-exporter doctor [exporter flags]``."""
    from ..config.args import parse_config

    if "-h" in argv or "--help" in argv:
        print(DOCTOR_USAGE)
        return 0
    try:
        config, _args = parse_config(list(argv))
    except ConfigError as exc:
        print(f"comfyui-exporter doctor: configuration error: {exc}", file=sys.stderr)
        return 2
    checks = run_checks(config)
    print(render(config, checks))
    return 1 if any(c.result == FAIL for c in checks) else 0


def run_checks(config: ExporterConfig, nvml_factory: Callable[[], Any] | None = None) -> list[Check]:
    """Every check, in report order; never raises for what it finds."""
    checks = doctor_host.check_web_config(config)
    reports = [check_instance(instance, config) for instance in config.instances]
    for report in reports:
        checks += report.checks
    systems = {i.name: r.system_stats for i, r in zip(config.instances, reports, strict=True)}
    checks += doctor_host.check_gpus(config, systems, nvml_factory)
    checks.append(doctor_host.check_listen(config))
    return checks


# -- one ComfyUI --------------------------------------------------------------------------------------------
def _session(instance: InstanceConfig) -> requests.Session:
    """Headers and TLS exactly as the exporter's client sets them."""
    return make_session(instance, user_agent="comfyui-exporter-doctor")


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _transport_problem(exc: requests.RequestException, url: str, timeout: float) -> tuple[str, str]:
    """(what happened, how to fix it) for a request that got no HTTP answer."""
    where = _where(url)
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            f"TLS handshake with {where} failed: {text[:160]}",
            "give the CA that signed ComfyUI's certificate (--comfyui-ca-file / tls.ca_file), or check "
            "that the URL should be https at all",
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return (
            f"no answer from {where} within {timeout:g} s",
            "ComfyUI may be hung or a firewall drops the packets; check it answers locally "
            f"(curl {url}/system_stats) or raise --request-timeout",
        )
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return (
            f"connection refused at {where}: nothing listens there",
            "start ComfyUI, or fix the port in --comfyui-url / url (ComfyUI's default is 8188; it uses "
            "what its --listen/--port flags say)",
        )
    if "Name or service not known" in text or "NameResolutionError" in text or "getaddrinfo" in text:
        return f"cannot resolve the host of {url}", "fix the host name in --comfyui-url / url"
    return f"cannot connect to {where}: {text[:160]}", "check the URL, and that ComfyUI runs and is reachable"


def check_instance(instance: InstanceConfig, config: ExporterConfig) -> InstanceReport:
    """All checks of one instance; when it cannot be reached, the rest are one SKIP row."""
    name, url = instance.name, instance.url
    timeout = config.request_timeout
    rows: list[Check] = []
    session = _session(instance)
    try:
        started = time.perf_counter()
        try:
            response = session.get(url + "/system_stats", timeout=timeout)
        except requests.RequestException as exc:
            detail, fix = _transport_problem(exc, url, timeout)
            rows.append(Check("reachable", name, FAIL, detail, fix))
            rows.append(Check("other-checks", name, SKIP, "ComfyUI not reachable"))
            return InstanceReport(rows, None)
        elapsed = (time.perf_counter() - started) * 1000
        stats, problem = _system_stats(response)
        if stats is None:
            rows.append(Check("reachable", name, FAIL, *problem))
            rows.append(Check("other-checks", name, SKIP, "not ComfyUI at this URL"))
            return InstanceReport(rows, None)
        rows.append(Check("reachable", name, OK, f"{url} answered /system_stats in {elapsed:.0f} ms"))
        rows.append(_version(name, stats))
        rows.append(_websocket(instance, min(timeout, 5.0)))
        rows.append(_history(session, name, url, timeout))
        rows.extend(_jobs(session, name, url, timeout))
        rows.append(_plugin(session, name, url, config))
        return InstanceReport(rows, stats)
    finally:
        session.close()


def _system_stats(response: requests.Response) -> tuple[dict[str, Any] | None, tuple[str, str]]:
    where = _where(response.url)
    if response.status_code in (401, 403):
        return None, (
            f"{where} wants credentials (HTTP {response.status_code})",
            "add the header the proxy expects: --comfyui-header 'Authorization: …' or, better, "
            "--comfyui-header-file / header_files so the token stays out of argv",
        )
    not_comfy_fix = (
        "this is not ComfyUI: wrong port or path in --comfyui-url? ComfyUI answers GET /system_stats "
        "with JSON (default port 8188)"
    )
    if response.status_code != 200:
        return None, (f"{where} answers, but /system_stats gives HTTP {response.status_code}", not_comfy_fix)
    try:
        body = response.json()
        if not isinstance(body["system"]["comfyui_version"], str):
            raise TypeError("comfyui_version is not a string")
    except (ValueError, KeyError, TypeError):
        kind = response.headers.get("Content-Type", "?").split(";")[0]
        return None, (f"{where} answers /system_stats with {kind}, not ComfyUI's JSON", not_comfy_fix)
    return body, ("", "")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.lstrip("v").split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _version(name: str, stats: dict[str, Any]) -> Check:
    system = stats.get("system", {})
    version = str(system.get("comfyui_version", ""))
    python = str(system.get("python_version", "")).split(" ", 1)[0]
    torch = system.get("pytorch_version", "?")
    devices = stats.get("devices") or [{}]
    detail = f"ComfyUI {version} (Python {python}, PyTorch {torch}, device {devices[0].get('name', '?')!r})"
    if not version or _version_tuple(version) < (0, 3):
        return Check("version", name, WARN, detail, "ComfyUI older than 0.3 is not tested; upgrade it")
    return Check("version", name, OK, detail)


def _websocket(instance: InstanceConfig, timeout: float) -> Check:
    """Connect like the exporter (own random clientId) and wait for the first ``status`` broadcast."""
    from websockets.sync.client import connect

    url = f"{instance.ws_url}?clientId=comfyui-exporter-doctor-{secrets.token_hex(4)}"
    fix = (
        "without the websocket the exporter still counts every outcome through its safety polls, only "
        "later (up to --poll-interval); behind a reverse proxy pass websocket upgrades (nginx: "
        "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade)"
    )
    context = instance.tls.ssl_context() if instance.ws_url.startswith("wss://") else None
    try:
        with connect(
            url,
            additional_headers=instance.headers,
            ssl=context,
            open_timeout=timeout,
            close_timeout=1,
            user_agent_header="comfyui-exporter-doctor",
        ) as ws:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
                if isinstance(message, bytes):
                    continue
                data = json.loads(message)
                if data.get("type") == "status":
                    remaining = (
                        data.get("data", {}).get("status", {}).get("exec_info", {}).get("queue_remaining")
                    )
                    return Check(
                        "websocket",
                        instance.name,
                        OK,
                        f"connected; first broadcast: status (queue_remaining {remaining})",
                    )
                return Check(
                    "websocket",
                    instance.name,
                    WARN,
                    f"connected, but the first message is {data.get('type')!r}, not status",
                    fix,
                )
    except TimeoutError:
        return Check(
            "websocket", instance.name, WARN, f"connected, but no status message within {timeout:g} s", fix
        )
    except Exception as exc:  # websockets raises many types; all mean "no websocket"
        return Check(
            "websocket",
            instance.name,
            WARN,
            f"cannot connect to {instance.ws_url}: {type(exc).__name__}: {str(exc)[:120]}",
            fix,
        )
    return Check("websocket", instance.name, WARN, "connected, but ComfyUI sent nothing", fix)


def _get(session: requests.Session, url: str, timeout: float, **params: Any) -> requests.Response | str:
    try:
        return session.get(url, params=params or None, timeout=timeout)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"


def _history(session: requests.Session, name: str, url: str, timeout: float) -> Check:
    response = _get(session, url + "/history", timeout, max_items=1)
    fix = "the exporter reads outcomes only from /history: check the URL and proxy rules for /history"
    if isinstance(response, str):
        return Check("history", name, FAIL, f"/history?max_items=1 failed: {response}", fix)
    try:
        body = response.json() if response.status_code == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Check(
            "history", name, FAIL, f"/history?max_items=1 gave HTTP {response.status_code}, not JSON", fix
        )
    return Check(
        "history",
        name,
        OK,
        f"/history?max_items=1 answered ({len(body)} entr{'y' if len(body) == 1 else 'ies'})",
    )


def _jobs(session: requests.Session, name: str, url: str, timeout: float) -> list[Check]:
    response = _get(session, url + "/api/jobs", timeout, status="pending,in_progress", limit=1)
    if not isinstance(response, str) and response.status_code == 200:
        return [Check("jobs-api", name, OK, "/api/jobs available (cheap queue reads)")]
    if not isinstance(response, str) and response.status_code == 404:
        queue = _get(session, url + "/queue", timeout)
        if isinstance(queue, str) or queue.status_code != 200:
            status = queue if isinstance(queue, str) else f"HTTP {queue.status_code}"
            return [
                Check(
                    "jobs-api",
                    name,
                    FAIL,
                    f"neither /api/jobs (404) nor /queue ({status}) answers",
                    "check proxy rules: the exporter needs /api/jobs or /queue for the queue",
                )
            ]
        return [
            Check(
                "jobs-api",
                name,
                WARN,
                "no /api/jobs: ComfyUI older than 0.6.0, using /queue",
                "works as is; upgrade ComfyUI to 0.6.0 or newer for cheaper queue reads",
            )
        ]
    status = response if isinstance(response, str) else f"HTTP {response.status_code}"
    return [Check("jobs-api", name, WARN, f"/api/jobs answered {status}", "check proxy rules for /api/jobs")]


def _plugin(session: requests.Session, name: str, url: str, config: ExporterConfig) -> Check:
    """GET the plugin's event route: 200 present, 404 absent (both fine), 401 a token question."""
    if not getattr(config, "plugin_enabled", True):
        return Check("plugin", name, SKIP, "plugin stream off (--plugin off)")
    token = getattr(config, "plugin_token", None)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        response = session.get(
            url + PLUGIN_PATH, params={"after": 0, "wait": 0}, headers=headers, timeout=config.request_timeout
        )
    except requests.RequestException as exc:
        return Check("plugin", name, WARN, f"probe failed: {type(exc).__name__}: {str(exc)[:120]}")
    if response.status_code == 200:
        return Check("plugin", name, INFO, "installed: validation errors and deleted prompts are visible too")
    if response.status_code == 404:
        return Check(
            "plugin",
            name,
            INFO,
            "not installed (optional; `comfyui-exporter install-plugin`, docs/plugin.md)",
        )
    if response.status_code == 401 and token:
        return Check(
            "plugin",
            name,
            WARN,
            "installed, but it refuses the token given",
            "--plugin-token-file (or COMFYUI_EXPORTER_PLUGIN_TOKEN) must hold the plugin's token",
        )
    if response.status_code == 401:
        return Check(
            "plugin",
            name,
            WARN,
            "installed, and it wants a token the exporter does not have",
            "give the plugin's token with --plugin-token-file (or COMFYUI_EXPORTER_PLUGIN_TOKEN)",
        )
    return Check("plugin", name, WARN, f"plugin route answered HTTP {response.status_code}")


# -- output -----------------------------------------------------------------------------------------------
def render(config: ExporterConfig, checks: list[Check]) -> str:
    """A fixed-width table, then each problem with its fix, then a one-line verdict."""
    head = ("CHECK", "INSTANCE", "RESULT", "DETAIL")
    rows = [head, *((c.check, c.target, c.result, c.detail) for c in checks)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"comfyui-exporter doctor: {len(config.instances)} instance(s), "
        f"listen {config.listen_host}:{config.listen_port}",
        "",
    ]
    lines += ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    problems = [c for c in checks if c.result in (FAIL, WARN) and c.fix]
    if problems:
        lines += ["", "Problems and fixes (docs/troubleshooting.md):"]
        for c in problems:
            lines += [f"  [{c.result}] {c.check} ({c.target}): {c.detail}", f"         fix: {c.fix}"]
    failed = sum(c.result == FAIL for c in checks)
    warned = sum(c.result == WARN for c in checks)
    verdict = "BROKEN" if failed else "OK"
    lines += ["", f"{verdict}: {failed} problem(s), {warned} warning(s)"]
    return "\n".join(lines)
