"""Section 2 — detection latency: failure written to history → counted in /metrics → chat message.

Part A (the exporter alone, default settings: --poll-interval 5, --debounce 0.1): the time from
ComfyUI writing the failure to history (the timestamp of its final ``execution_error`` message in the
history entry, ComfyUI's own clock) to the first /metrics response that counts it, polling /metrics
every ~10 ms over a keep-alive connection. Idle, and with 5 successful prompts/s in the background.

Part B (the whole alerting path, fast profile of docs/alerting.md): the shipped Prometheus and
Alertmanager configs rewritten for loopback by the rules engineer's helpers (tests/support/
binaries.py, as tests/e2e does), scrape and evaluation 1 s, group_wait 1 s, exporter --poll-interval
1; Alertmanager → Slack (an HTTP sink) and → the alert relay → a fake DingTalk robot. Every probe
is a fresh alert group (a new comfyui × error_type), so group_wait applies, as for a first failure.
"""

from __future__ import annotations

import http.client
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .common import SectionResult, Table, Target, ensure_paths, percentile
from .workload import LoadGenerator, Mix, start_sim

ensure_paths()

from comfyui_exporter.sim.testing import SimHandle  # noqa: E402
from tests.support.stack import ExporterProcess  # noqa: E402

FAILURE_OUTCOMES = ("oom", "cuda_error", "file_not_found", "model_load_error", "runtime_error")
ERROR_TYPE = {
    "oom": "oom",
    "cuda_error": "cuda_error",
    "file_not_found": "model_not_found",
    "model_load_error": "model_load_error",
    "runtime_error": "node_exception",
}
_FAILURES = re.compile(rb"^comfyui_prompt_failures_total\{[^}]*\} (\S+)", re.M)


@dataclass(frozen=True)
class Profile:
    probes: int
    busy_rate: float  # background prompts/s of the second run (0: skip it)
    e2e_sims: int
    e2e_types: int


FULL = Profile(probes=25, busy_rate=5.0, e2e_sims=2, e2e_types=5)
SMOKE = Profile(probes=3, busy_rate=0.0, e2e_sims=1, e2e_types=1)


class MetricsPoller:
    """Reads /metrics over one keep-alive connection; cheap enough to run every 10 ms."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def failures(self) -> float:
        self.conn.request("GET", "/metrics")
        body = self.conn.getresponse().read()
        return sum(float(v) for v in _FAILURES.findall(body))

    def wait_above(self, value: float, timeout: float = 15.0) -> float:
        """time.time() of the first response showing more than ``value`` failures."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.failures() > value:
                return time.time()
            time.sleep(0.01)
        raise TimeoutError("the failure never showed up in /metrics")

    def close(self) -> None:
        self.conn.close()


def _has_error_type(text: str, error_type: str) -> bool:
    """The relay writes English or Chinese ("错误类型：oom") depending on its language setting."""
    return re.search(rf"(Error type|错误类型)\s*[:：]\s*{re.escape(error_type)}\b", text) is not None


def write_time(sim: SimHandle, prompt_id: str) -> float:
    """When ComfyUI wrote the entry: the timestamp (ms) of its final status message."""
    item = sim.get(f"/history/{prompt_id}")[prompt_id]
    return float(item["status"]["messages"][-1][1]["timestamp"]) / 1000.0


def _probe_metrics(probes: int, rate: float, rng: random.Random, log: Callable[[str], None]) -> list[float]:
    sim = start_sim()
    load = None
    exporter = ExporterProcess(["--no-gpu", "--comfyui-url", f"sim={sim.url}"])
    latencies = []
    try:
        exporter.start()
        time.sleep(1.0)
        if rate > 0:
            load = LoadGenerator(sim.port, Mix(failure_share=0.0, interrupt_share=0.0), rate, seed=5).start()
        poller = MetricsPoller(exporter.port)
        for _ in range(probes):
            time.sleep(rng.uniform(0.2, 1.0))  # land in every phase of debounce and safety poll
            before = poller.failures()
            outcome = rng.choice(FAILURE_OUTCOMES)
            (pid,) = sim.enqueue(
                outcome=outcome,
                seconds=rng.uniform(0.0, 0.3),
                client_id=rng.choice([None, "api-client"]),
            )
            seen = poller.wait_above(before)
            latencies.append(seen - write_time(sim, pid))
        poller.close()
    finally:
        if load is not None:
            load.stop()
        exporter.stop()
        sim.stop()
    log(f"  [latency] failure → /metrics at {rate:g}/s: p50 {statistics.median(latencies) * 1000:.0f} ms")
    return latencies


def _e2e(
    prof: Profile, rng: random.Random, log: Callable[[str], None], smoke: bool = False
) -> dict[str, list[float]]:
    """Failure → Slack and → DingTalk through the real Prometheus + Alertmanager + relay."""
    import yaml

    from comfyui_exporter.relay.threaded import RelayStack
    from tests.support.binaries import (
        prepare_alertmanager_config,
        prepare_prometheus_config,
        start_alertmanager,
        start_prometheus,
    )
    from tests.support.sinks import HTTPSink, SMTPSink

    token = "bench-relay-token"
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    names = [f"e2e{i}" for i in range(prof.e2e_sims)]
    sims = {name: start_sim(seed=i) for i, name in enumerate(names)}
    exporter = None
    relay = RelayStack(workdir / "relay", token).start()
    out: dict[str, list[float]] = {"slack": [], "dingtalk": [], "metrics": []}
    try:
        args = ["--no-gpu", "--poll-interval", "1"]
        for name, sim in sims.items():
            args += ["--comfyui-url", f"{name}={sim.url}"]
        exporter = ExporterProcess(args).start()
        with HTTPSink() as http_sink, SMTPSink(username="bench@example.com", password="bench-pw") as smtp:
            am_config = prepare_alertmanager_config(
                workdir / "alertmanager",
                slack_url=f"{http_sink.url}/slack",
                smtp_address=smtp.address,
                smtp_password="bench-pw",
                relay_url=relay.url,
                relay_token=token,
                group_wait="1s",
            )
            with start_alertmanager(am_config, workdir / "alertmanager") as am:
                prom_config = prepare_prometheus_config(
                    workdir / "prometheus",
                    targets={
                        "comfyui-exporter": [f"127.0.0.1:{exporter.port}"],
                        "comfyui-alert-relay": [relay.url.removeprefix("http://")],
                    },
                    alertmanagers=[am.address],
                    scrape_interval="1s",
                    evaluation_interval="1s",
                )
                # Both chat paths for every alert: Slack directly, DingTalk through the relay.
                config = yaml.safe_load(prom_config.read_text())
                config["global"]["external_labels"] = {"chat": "slack,dingtalk"}
                prom_config.write_text(yaml.safe_dump(config, sort_keys=False))
                with start_prometheus(prom_config, workdir / "prometheus") as prom:
                    prom.wait_for_alertmanager(timeout=30)
                    prom.wait_for_scrapes("comfyui-exporter", samples=2, timeout=60)
                    poller = MetricsPoller(exporter.port)
                    outcomes = FAILURE_OUTCOMES[: prof.e2e_types]
                    for name in names:
                        for outcome in outcomes:
                            et = ERROR_TYPE[outcome]
                            time.sleep(rng.uniform(0.2, 1.0))
                            before = poller.failures()
                            (pid,) = sims[name].enqueue(outcome=outcome)
                            seen = poller.wait_above(before)
                            written = write_time(sims[name], pid)
                            slack = http_sink.wait_for(
                                lambda r, n=name, e=et: (
                                    r.path == "/slack"
                                    and f" {n} {e}"
                                    in (r.json or {}).get("attachments", [{}])[0].get("title", "")
                                ),
                                60,
                                f"Slack for {name}/{et}",
                            )
                            deadline = time.monotonic() + 60
                            ding = None
                            while ding is None and time.monotonic() < deadline:
                                ding = next(
                                    (
                                        m
                                        for m in relay.accepted()
                                        if name in m.text and _has_error_type(m.text, et)
                                    ),
                                    None,
                                )
                                time.sleep(0.02)
                            if ding is None:
                                seen_texts = [(m.code, m.text[:200]) for m in relay.robots.received]
                                raise TimeoutError(
                                    f"no DingTalk message for {name}/{et}; robot got {seen_texts}"
                                )
                            out["metrics"].append(seen - written)
                            out["slack"].append(slack.received_at - written)
                            out["dingtalk"].append(ding.at - written)
                    poller.close()
    finally:
        if exporter is not None:
            exporter.stop()
        relay.stop()
        for sim in sims.values():
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # Prometheus TSDB, Alertmanager state, relay journal
    log(f"  [latency] e2e: Slack p50 {statistics.median(out['slack']):.2f} s")
    return out


def _row(label: str, values: list[float], unit: str = "ms") -> list[str]:
    scale = 1000.0 if unit == "ms" else 1.0
    f = (lambda v: f"{v * scale:.0f} ms") if unit == "ms" else (lambda v: f"{v:.2f} s")
    return [
        label,
        str(len(values)),
        f(percentile(values, 50)),
        f(percentile(values, 95)),
        f(max(values)),
        f(min(values)),
    ]


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    prof = SMOKE if smoke else FULL
    rng = random.Random(17)
    result = SectionResult("latency", "2. Detection latency")
    idle = _probe_metrics(prof.probes, 0.0, rng, log)
    busy = _probe_metrics(prof.probes, prof.busy_rate, rng, log) if prof.busy_rate else []
    table = Table(
        "Failure written to ComfyUI's history → counted in /metrics (exporter defaults: --poll-interval 5, "
        "--debounce 0.1; /metrics polled every ~10 ms)",
        ["background", "failures", "p50", "p95", "max", "min"],
    )
    table.rows.append(_row("idle", idle))
    if busy:
        table.rows.append(_row(f"{prof.busy_rate:g} successful prompts/s", busy))
    result.tables.append(table)
    worst = max(idle + busy)
    p50 = statistics.median(idle + busy)
    result.numbers.update(
        metrics_p50_ms=percentile(idle, 50) * 1000,
        metrics_p95_ms=percentile(idle, 95) * 1000,
        metrics_max_ms=max(idle) * 1000,
    )
    if busy:
        result.numbers.update(
            metrics_busy_p50_ms=percentile(busy, 50) * 1000, metrics_busy_max_ms=max(busy) * 1000
        )
    result.targets.append(
        Target(
            "failure → /metrics ≤ 1 s",
            "max ≤ 1 s",
            f"max {worst * 1000:.0f} ms (p50 {p50 * 1000:.0f} ms)",
            worst <= 1.0,
        )
    )
    from tests.support.binaries import find_binary

    missing = [b for b in ("prometheus", "alertmanager") if find_binary(b) is None]
    try:
        if missing:
            raise FileNotFoundError(f"{' and '.join(missing)} not installed")
        e2e = _e2e(prof, rng, log, smoke)
    except Exception as exc:  # binaries or relay missing: report, keep part A
        result.notes.append(f"End-to-end part did not run: {type(exc).__name__}: {exc}")
        result.targets.append(Target("failure → Slack / DingTalk measured", "runs", "did not run", False))
    else:
        t2 = Table(
            "Failure written to history → chat message received (fast profile: exporter --poll-interval 1, "
            "scrape and evaluation 1 s, group_wait 1 s; real Prometheus + Alertmanager, relay in-process)",
            ["path", "failures", "p50", "p95", "max", "min"],
        )
        t2.rows += [
            _row("→ /metrics (same runs)", e2e["metrics"]),
            _row("→ Slack (Alertmanager slack_configs → HTTP sink)", e2e["slack"], "s"),
            _row("→ DingTalk (Alertmanager → relay → fake robot)", e2e["dingtalk"], "s"),
        ]
        result.tables.append(t2)
        result.numbers.update(
            slack_p50_s=percentile(e2e["slack"], 50),
            slack_max_s=max(e2e["slack"]),
            dingtalk_p50_s=percentile(e2e["dingtalk"], 50),
            dingtalk_max_s=max(e2e["dingtalk"]),
        )
        result.headlines.append(
            f"Failure → /metrics p50 {percentile(idle, 50) * 1000:.0f} ms (max {max(idle) * 1000:.0f} ms); "
            f"→ Slack p50 {percentile(e2e['slack'], 50):.1f} s, → DingTalk via the relay p50 "
            f"{percentile(e2e['dingtalk'], 50):.1f} s (fast profile)"
        )
    if not result.headlines:
        result.headlines.append(
            f"Failure → /metrics p50 {percentile(idle, 50) * 1000:.0f} ms (max {max(idle) * 1000:.0f} ms)"
        )
    result.notes.append(
        "Write time = timestamp of the history entry's final message (ComfyUI's clock, ms); arrival = "
        "time.time() of the /metrics response or of the sink/robot receiving the message; same host clock."
    )
    return result
