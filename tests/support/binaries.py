"""Find and run the Prometheus / Alertmanager binaries for tests; start them on free loopback ports.

Binaries are looked up on PATH (Debian names first: Alertmanager is ``prometheus-alertmanager``
there) or taken from ``PROMETHEUS_BIN``, ``PROMTOOL_BIN``, ``ALERTMANAGER_BIN``, ``AMTOOL_BIN``.

A missing binary skips the test with the reason, except under ``CI=true`` where it fails it: CI must
never go green by skipping the checks it exists for.

``start_prometheus`` / ``start_alertmanager`` are context managers that run the server on
127.0.0.1 in a temporary directory, wait until it is ready, and stop it (and show its log tail in
the failure) afterwards. Alertmanager always runs with clustering off (``--cluster.listen-address=``):
the default gossip listener binds 0.0.0.0:9094 and delays the first notification by ~10 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CANDIDATES: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "amtool": ("amtool",),
    "victoria-metrics": ("victoria-metrics", "victoria-metrics-prod"),  # tests/ha long-term storage
}
INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_binary(name: str) -> str | None:
    """The path of a binary (``prometheus``, ``promtool``, ``alertmanager``, ``amtool``) or None."""
    override = os.environ.get(f"{name.upper().replace('-', '_')}_BIN")
    if override:
        return override if Path(override).is_file() and os.access(override, os.X_OK) else None
    for candidate in CANDIDATES[name]:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def require_binary(name: str) -> str:
    """The binary's path; otherwise skip the test, or fail it under CI=true."""
    path = find_binary(name)
    if path:
        return path
    names = " or ".join(CANDIDATES[name])
    hint = (
        INSTALL_HINT
        if name != "victoria-metrics"
        else "apt-get install -y --no-install-recommends victoria-metrics"
    )
    env = f"{name.upper().replace('-', '_')}_BIN"
    reason = f"{names} not found on PATH (nor ${env}); install with: {hint}"
    if in_ci():
        pytest.fail(f"CI=true and a required binary is missing: {reason}", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pragma: no cover


def require_module(name: str, pip_name: str | None = None) -> None:
    """Import-check a Python module; skip the test without it, or fail it under CI=true."""
    import importlib.util

    if importlib.util.find_spec(name) is not None:
        return
    reason = f"Python module {name} is missing; install with: pip install {pip_name or name}"
    if in_ci():
        pytest.fail(f"CI=true and a required module is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def run_tool(
    name: str, *args: str, cwd: str | Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run promtool/amtool/... and return the completed process (never raises on rc != 0)."""
    return subprocess.run(
        [require_binary(name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------- HTTP


def http_json(method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
    """A JSON request; returns the decoded body ('' for an empty one). Raises on HTTP errors."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else ""


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; return it. Raises TimeoutError."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError) as exc:  # server not up yet, etc.
            last_error = exc
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{suffix}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A running Prometheus or Alertmanager."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return http_json("GET", f"{self.url}{path}{query}")

    def post(self, path: str, body: Any = None) -> Any:
        return http_json("POST", f"{self.url}{path}", body)

    def delete(self, path: str) -> Any:
        return http_json("DELETE", f"{self.url}{path}")

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class Prometheus(Server):
    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result list (each with ``metric`` and ``value``)."""
        body = self.get("/api/v1/query", query=expr)
        return body["data"]["result"]

    def query_value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/alerts")["data"]["alerts"]

    def active_alertmanagers(self) -> list[str]:
        return [am["url"] for am in self.get("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]]

    def wait_for_alertmanager(self, timeout: float = 20) -> None:
        """Alerts fired before Prometheus has discovered its Alertmanager are dropped (for 1 m)."""
        wait_until(self.active_alertmanagers, timeout, what=f"{self.name} to discover an Alertmanager")

    def wait_for_scrapes(self, job: str, targets: int = 1, samples: int = 2, timeout: float = 30) -> None:
        """Wait until ``targets`` targets of ``job`` are up with at least ``samples`` samples each:
        increase() needs two samples, and the first scrape comes ~5 s after /-/ready."""
        expr = f'count(count_over_time(up{{job="{job}"}}[5m]) >= {samples} and up{{job="{job}"}} == 1)'
        wait_until(
            lambda: (self.query_value(expr) or 0) >= targets,
            timeout,
            what=f"{targets} target(s) of job {job} up with {samples} samples",
        )


class Alertmanager(Server):
    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        """/api/v2/alerts; pass e.g. silenced=False, inhibited=True, filter='alertname="X"'."""
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items()}
        return self.get("/api/v2/alerts", **params)

    def post_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        self.post("/api/v2/alerts", list(alerts))

    def add_silence(
        self, matchers: dict[str, str], duration_s: float = 600, comment: str = "test", author: str = "tests"
    ) -> str:
        """Create a silence with equality matchers; returns its id."""
        now = time.time()
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()
            ],
            "startsAt": _rfc3339(now),
            "endsAt": _rfc3339(now + duration_s),
            "createdBy": author,
            "comment": comment,
        }
        return self.post("/api/v2/silences", body)["silenceID"]

    def expire_silence(self, silence_id: str) -> None:
        self.delete(f"/api/v2/silence/{silence_id}")

    def silences(self) -> list[dict[str, Any]]:
        return self.get("/api/v2/silences")


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _start(
    kind: type[Server],
    name: str,
    build_args: Callable[[int, Path], list[str]],
    workdir: Path,
    ready_timeout: float,
    attempts: int = 3,
) -> Server:
    binary = require_binary(name)
    workdir.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(attempts):
        port = free_port()
        log_path = workdir / f"{name}.{attempt}.log"
        args = [binary, *build_args(port, workdir)]
        log = log_path.open("wb")
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
        )
        log.close()
        server = kind(name=name, port=port, workdir=workdir, process=process, log_path=log_path, args=args)
        try:
            wait_until(
                lambda s=server: s.process.poll() is not None or _ready(s),
                ready_timeout,
                interval=0.05,
                what=f"{name} on {server.address} to be ready",
            )
        except TimeoutError:
            server.stop()
            raise RuntimeError(f"{name} did not become ready:\n{server.log_tail()}") from None
        if server.process.poll() is None:
            return server
        last = server.log_tail()
        if "address already in use" not in last:
            break
    raise RuntimeError(f"{name} exited at start:\n{last}")


def _ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def start_prometheus(
    config_path: str | Path,
    workdir: str | Path,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 30,
) -> Iterator[Prometheus]:
    """Run Prometheus with ``config_path`` (rule_files resolve relative to it) on a free port.

    Lifecycle API is on (``/-/reload``); the external URL is the loopback address so that alert
    links are stable; the TSDB lives in ``workdir``.
    """
    config_path = Path(config_path).resolve()
    workdir = Path(workdir)

    def args(port: int, wd: Path) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.tsdb.path={wd / 'prometheus-data'}",
            "--storage.tsdb.retention.time=1h",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
            "--web.enable-lifecycle",
            *extra_args,
        ]

    server = _start(Prometheus, "prometheus", args, workdir, ready_timeout)
    assert isinstance(server, Prometheus)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def start_alertmanager(
    config_path: str | Path,
    workdir: str | Path,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 30,
    cluster_args: Sequence[str] = (),
) -> Iterator[Alertmanager]:
    """Run Alertmanager with ``config_path`` on a free port, clustering off unless ``cluster_args``
    (``--cluster.listen-address=...``, ``--cluster.peer=...``) turn it on (tests/ha)."""
    config_path = Path(config_path).resolve()
    workdir = Path(workdir)

    def args(port: int, wd: Path) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.path={wd / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
            *(cluster_args or ["--cluster.listen-address="]),
            *extra_args,
        ]

    server = _start(Alertmanager, "alertmanager", args, workdir, ready_timeout)
    assert isinstance(server, Alertmanager)
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------- the shipped configs, for tests
#
# Tests run the shipped prometheus/ and alertmanager/ files, rewritten only where a test must:
# intervals, addresses, file paths, and (for the e2e) time knobs. Never a hand-written copy.

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"
ALERTMANAGER_DIR = REPO / "alertmanager"
SHIPPED_SECRETS_DIR = "/etc/alertmanager/secrets/"

KNOB_MARKER = re.compile(r"#\s*knob:\s*([A-Za-z0-9_]+)")
# A number or Prometheus duration standing alone (not part of a name like `rate5m` or `:15m`).
KNOB_VALUE = re.compile(r"(?<![\w.:])(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|s|m|h|d|w|y)?)(?![\w.])")


@dataclass(frozen=True)
class KnobSite:
    name: str
    value: str
    line_no: int
    file: Path


def knob_sites(path: Path) -> list[KnobSite]:
    """Every ``# knob: NAME`` in a rule file with its value (the last number/duration before it)."""
    sites = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        marker = KNOB_MARKER.search(line)
        if not marker or line.lstrip().startswith("#"):  # comment lines only talk about knobs
            continue
        values = KNOB_VALUE.findall(line[: marker.start()])
        if not values:
            raise ValueError(f"{path}:{line_no}: knob {marker.group(1)} has no value before it")
        sites.append(KnobSite(marker.group(1), values[-1], line_no, path))
    return sites


def set_knobs(text: str, knobs: dict[str, str]) -> tuple[str, set[str]]:
    """Replace the value of each named knob; returns the new text and the knob names found."""
    found: set[str] = set()
    out = []
    for line in text.splitlines(keepends=True):
        marker = KNOB_MARKER.search(line)
        if marker and marker.group(1) in knobs and not line.lstrip().startswith("#"):
            code = line[: marker.start()]
            matches = list(KNOB_VALUE.finditer(code))
            last = matches[-1]
            line = code[: last.start()] + knobs[marker.group(1)] + code[last.end() :] + line[marker.start() :]
            found.add(marker.group(1))
        out.append(line)
    return "".join(out), found


def prepare_prometheus_config(
    out_dir: str | Path,
    *,
    targets: dict[str, list[str]],
    alertmanagers: Sequence[str],
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    knobs: dict[str, str] | None = None,
    source: Path = PROMETHEUS_DIR / "prometheus.yml",
) -> Path:
    """Write the shipped prometheus.yml and its rule files to ``out_dir``; return the config path.

    ``targets`` maps each scrape job of the shipped file to its test targets (every job must be
    given); ``alertmanagers`` replaces the Alertmanager targets; ``knobs`` sets `# knob:` values in
    the rule files (every name must exist).
    """
    import yaml

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(source.read_text())
    glob = config.setdefault("global", {})
    if scrape_interval:
        glob["scrape_interval"] = scrape_interval
        glob["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        glob["evaluation_interval"] = evaluation_interval
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if set(jobs) != set(targets):
        raise KeyError(f"scrape jobs in {source}: {sorted(jobs)}; targets given for {sorted(targets)}")
    for name, job in jobs.items():
        for static in job["static_configs"]:
            static["targets"] = list(targets[name])
            if "exporter_url" in (static.get("labels") or {}) and targets[name]:
                static["labels"]["exporter_url"] = f"http://{targets[name][0]}"  # the links' base
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": list(alertmanagers)}]}]

    knobs = dict(knobs or {})
    found: set[str] = set()
    rules_out = out_dir / "rules"
    rules_out.mkdir(exist_ok=True)
    for pattern in config.get("rule_files", []):
        for rule_file in sorted(source.parent.glob(pattern)):
            text, names = set_knobs(rule_file.read_text(), knobs)
            found |= names
            target = out_dir / rule_file.relative_to(source.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    missing = set(knobs) - found
    if missing:
        raise KeyError(f"knobs not found in the rule files: {sorted(missing)}")
    path = out_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def prepare_alertmanager_config(
    out_dir: str | Path,
    *,
    slack_url: str,
    smtp_address: str,
    smtp_password: str,
    relay_url: str,
    relay_token: str,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
    source: Path = ALERTMANAGER_DIR / "alertmanager.yml",
) -> Path:
    """Write the shipped alertmanager.yml to ``out_dir`` with test addresses, secrets and timings.

    * every ``*_file`` under /etc/alertmanager/secrets/ points at a file in ``out_dir/secrets``
      holding the test value (Slack URL, SMTP password, relay token);
    * SMTP goes to ``smtp_address`` without TLS; webhooks keep their path on ``relay_url``;
    * ``group_wait``/``group_interval``/``repeat_interval`` replace every occurrence in the route tree;
    * templates resolve to the shipped templates directory.
    """
    import yaml

    out_dir = Path(out_dir)
    secrets = out_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    values = {"slack_webhook_url": slack_url, "smtp_password": smtp_password, "relay_token": relay_token}
    for name, value in values.items():
        (secrets / name).write_text(value)
    relay = urllib.parse.urlsplit(relay_url)
    timings = {"group_wait": group_wait, "group_interval": group_interval, "repeat_interval": repeat_interval}
    seen: set[str] = set()

    def rewrite(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: rewrite(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v, key) for v in node]
        if not isinstance(node, str | bool):
            return node
        if key and key.endswith("_file") and isinstance(node, str) and node.startswith(SHIPPED_SECRETS_DIR):
            name = node[len(SHIPPED_SECRETS_DIR) :]
            if name not in values:
                raise KeyError(f"unknown secret file {node} in {source}")
            seen.add(name)
            return str(secrets / name)
        if key in ("smtp_smarthost", "smarthost"):
            seen.add("smarthost")
            return smtp_address
        if key in ("smtp_require_tls", "require_tls"):
            return False
        if key == "url":
            parts = urllib.parse.urlsplit(node)
            seen.add("webhook")
            return urllib.parse.urlunsplit((relay.scheme, relay.netloc, parts.path, parts.query, ""))
        if timings.get(key or ""):
            seen.add(key)
            return timings[key or ""]
        return node

    config = rewrite(yaml.safe_load(source.read_text()))
    config["templates"] = [str((source.parent / t).resolve()) for t in config.get("templates", [])]
    expected = {*values, "smarthost", "webhook", *(k for k, v in timings.items() if v)}
    if seen != expected:
        raise KeyError(f"{source}: expected to rewrite {sorted(expected)}, rewrote {sorted(seen)}")
    path = out_dir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
