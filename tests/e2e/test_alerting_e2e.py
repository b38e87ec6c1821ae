"""End to end on the real binaries: simulator -> exporter -> Prometheus -> Alertmanager -> receivers.

Everything runs on 127.0.0.1 in temporary directories: ten simulated ComfyUI instances (one per
scenario, so every scenario starts its own alert groups), one exporter watching all of them,
Prometheus and Alertmanager started from the *shipped* configs (tests/support/binaries.py rewrites
only intervals, addresses, secret-file paths and a few time knobs), the real alert relay
(``comfyui-alert-relay``: it receives Alertmanager's webhooks with the bearer token and journals
every notification; Prometheus scrapes it), an HTTP sink standing in for Slack, and an aiosmtpd SMTP
sink.

Fast profile used here: scrape and evaluation 1 s, exporter poll 1 s, group_wait 1 s,
group_interval 2 s. Time knobs are shortened so that "down for 1 m", "stuck for 30 m" and "a
failure is new for 5 m" happen within seconds.

The failure -> Slack delivery times of the latency runs are printed and written to
$COMFYUI_E2E_REPORT (default <tmp>/comfyui-exporter-e2e/delivery-latency.json).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.binaries import (
    REPO,
    Alertmanager,
    Prometheus,
    free_port,
    prepare_alertmanager_config,
    prepare_prometheus_config,
    require_binary,
    require_module,
    run_tool,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from tests.support.sinks import HTTPRequest, HTTPSink, SMTPSink

pytestmark = pytest.mark.e2e

LATENCY_RUNS = 5
SIMS = ["oom", *(f"lat{i}" for i in range(1, LATENCY_RUNS + 1)), "silenced", "burst", "stuck", "killed"]
FAST = {"scrape_interval": "1s", "evaluation_interval": "1s"}
AM_TIMING = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}
# Time knobs shortened for the test (the shipped defaults are in docs/alerting.md).
KNOBS = {
    "comfyui_down_for": "2s",
    "new_failure_window": "20s",
    "new_failure_window_seconds": "20",
    "prompt_stuck_running_seconds": "10",
    "prompt_stuck_no_progress_seconds": "3",
    "prompt_stuck_for": "1s",
}
RELAY_TOKEN = "e2e-relay-token"
SMTP_USER = "comfyui-alertmanager@example.com"
SMTP_PASSWORD = "e2e-smtp-password"
RUNBOOKS = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md"
REPORT = Path(
    os.environ.get("COMFYUI_E2E_REPORT")
    or Path(tempfile.gettempdir()) / "comfyui-exporter-e2e" / "delivery-latency.json"
)


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def log(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Relay(Process):
    journal_path: Path = Path()

    def records(self) -> list[dict[str, Any]]:
        """The relay's journal (JSON lines, one record per notification or event)."""
        if not self.journal_path.exists():
            return []
        lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@dataclass
class Stack:
    sims: dict[str, Any]
    exporter: Process
    relay: Relay
    prometheus: Prometheus
    alertmanager: Alertmanager
    http: HTTPSink
    smtp: SMTPSink
    notes: dict[str, Any] = field(default_factory=dict)

    # ---- what arrived
    def slack(self, comfyui: str | None = None) -> list[str]:
        """Titles of the Slack messages received, optionally only those about one instance."""
        titles = [r.json["attachments"][0]["title"] for r in self.http.requests("/slack")]
        return [t for t in titles if comfyui is None or t.split()[3:4] == [comfyui]]

    def wait_slack(self, title: str, timeout: float = 30) -> HTTPRequest:
        return self.http.wait_for(
            lambda r: r.path == "/slack" and r.json["attachments"][0]["title"] == title,
            timeout,
            f"Slack {title!r}",
        )

    def mails(self, comfyui: str) -> list[str]:
        return [m.subject for m in self.smtp.messages() if m.subject.split()[3:4] == [comfyui]]

    def journal(self, comfyui: str) -> list[dict[str, Any]]:
        """Alertmanager payloads the relay journaled from the catch-all /journal route."""
        payloads = [r["payload"] for r in self.relay.records() if r.get("event") == "journal_only"]
        return [p for p in payloads if p["groupLabels"].get("comfyui") == comfyui]

    def wait_journal(self, comfyui: str, statuses: list[str], timeout: float = 15) -> list[dict[str, Any]]:
        """The journal is its own route and receiver: it may land a moment after Slack."""
        wait_until(
            lambda: [p["status"] for p in self.journal(comfyui)] == statuses,
            timeout,
            what=f"the relay journal to hold {statuses} for {comfyui}",
        )
        return self.journal(comfyui)

    def am_alerts(self, comfyui: str) -> list[dict[str, Any]]:
        return [a for a in self.alertmanager.alerts() if a["labels"].get("comfyui") == comfyui]


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO / "exporter"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(),
        )


def _wait_ready(proc: Process, what: str) -> None:
    def ready() -> bool:
        if proc.process.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.process.returncode}:\n{proc.log()}")
        with urllib.request.urlopen(f"{proc.url}/-/ready", timeout=2) as response:
            return response.status == 200

    try:
        wait_until(ready, 30, what=f"{what} to be ready")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{what} log:\n{proc.log()}") from exc


def _start_exporter(sims: dict[str, Any], workdir: Path) -> Process:
    port = free_port()
    args = ["comfyui_exporter", "--listen", f"127.0.0.1:{port}", "--poll-interval", "1", "--no-gpu"]
    for name, sim in sims.items():
        args += ["--comfyui-url", f"{name}={sim.url}"]
    exporter = Process(_spawn(args, workdir / "exporter.log"), f"127.0.0.1:{port}", workdir / "exporter.log")
    _wait_ready(exporter, "the exporter")
    return exporter


def _start_relay(workdir: Path, exporter: Process, robot_url: str) -> Relay:
    """The real relay with a minimal config: the bearer token Alertmanager sends, a journal, and one
    DingTalk target (the relay requires one; no alert is routed to it here)."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "relay_token").write_text(RELAY_TOKEN)
    (workdir / "dingtalk_url").write_text(robot_url)
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "auth_token_file": str(workdir / "relay_token"),
        "journal": {"path": str(workdir / "journal.jsonl")},
        "exporter_failures_url": f"{exporter.url}/failures",
        "targets": {"dingtalk": {"type": "dingtalk", "url_file": str(workdir / "dingtalk_url")}},
    }
    (workdir / "relay.yml").write_text(yaml.safe_dump(config))
    process = _spawn(
        ["comfyui_exporter.relay", "--config", str(workdir / "relay.yml")], workdir / "relay.log"
    )
    relay = Relay(process, f"127.0.0.1:{port}", workdir / "relay.log", workdir / "journal.jsonl")
    _wait_ready(relay, "the alert relay")
    return relay


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_binary("prometheus")
    require_binary("alertmanager")
    require_module("aiosmtpd")
    require_module("aiohttp")  # the simulator and the relay
    require_module("jinja2")  # the relay
    from comfyui_exporter.sim.testing import SimHandle

    workdir = tmp_path_factory.mktemp("e2e")
    sims = {name: SimHandle(free_port(), {}) for name in SIMS}
    processes: list[Process] = []
    try:
        with ThreadPoolExecutor(max_workers=len(sims)) as pool:
            list(pool.map(lambda s: s.start(), sims.values()))
        exporter = _start_exporter(sims, workdir)
        processes.append(exporter)
        with HTTPSink() as http, SMTPSink(username=SMTP_USER, password=SMTP_PASSWORD) as smtp:
            relay = _start_relay(workdir / "relay", exporter, f"{http.url}/robot/dingtalk?access_token=e2e")
            processes.append(relay)
            am_config = prepare_alertmanager_config(
                workdir / "alertmanager",
                slack_url=f"{http.url}/slack",
                smtp_address=smtp.address,
                smtp_password=SMTP_PASSWORD,
                relay_url=relay.url,  # /alerts/<target> and /journal
                relay_token=RELAY_TOKEN,
                **AM_TIMING,
            )
            with start_alertmanager(am_config, workdir / "alertmanager") as am:
                prom_config = prepare_prometheus_config(
                    workdir / "prometheus",
                    targets={"comfyui-exporter": [exporter.address], "comfyui-alert-relay": [relay.address]},
                    alertmanagers=[am.address],
                    knobs=KNOBS,
                    **FAST,
                )
                with start_prometheus(prom_config, workdir / "prometheus") as prom:
                    stack = Stack(sims, exporter, relay, prom, am, http, smtp)
                    try:
                        _wait_until_watching(stack)
                    except TimeoutError as exc:
                        raise AssertionError(
                            f"{exc}\nexporter log:\n{exporter.log()}\nprometheus:\n{prom.log_tail()}"
                        ) from exc
                    yield stack
                    rejected = [r for r in relay.records() if r.get("event") == "rejected"]
                    assert rejected == [], f"the relay rejected Alertmanager's requests: {rejected}"
    finally:
        for process in processes:
            process.stop()
        with ThreadPoolExecutor(max_workers=len(sims)) as pool:
            list(pool.map(lambda s: s.stop(), sims.values()))


def _wait_until_watching(stack: Stack) -> None:
    """Alerts only work once Prometheus knows its Alertmanager and has two samples of every
    pre-created failure counter (increase() needs two)."""
    prom = stack.prometheus
    prom.wait_for_alertmanager(timeout=20)
    prom.wait_for_scrapes("comfyui-exporter", samples=2, timeout=40)
    prom.wait_for_scrapes("comfyui-alert-relay", samples=1, timeout=20)
    expr = 'count(count_over_time(comfyui_prompt_failures_total{error_type="oom"}[1m]) >= 2)'
    wait_until(
        lambda: prom.query_value(expr) == len(SIMS), 30, what="two samples of every instance's counters"
    )
    wait_until(lambda: prom.query_value("sum(comfyui_up)") == len(SIMS), 30, what="every instance up")


def _title(status: str, severity: str, alert: str, comfyui: str, error_type: str = "") -> str:
    head = "[FIRING:1]" if status == "firing" else "[RESOLVED]"
    return " ".join(filter(None, [head, severity.upper(), alert, comfyui, error_type]))


# ------------------------------------------------------------------------------------- scenarios


def test_oom_reaches_slack_email_and_journal(stack: Stack) -> None:
    started = time.time()
    stack.sims["oom"].enqueue("oom")
    title = _title("firing", "critical", "ComfyUIOutOfMemory", "oom", "oom")
    slack = stack.wait_slack(title)
    stack.notes["oom_firing_at"] = slack.received_at
    exporter = stack.exporter.address
    text = slack.json["attachments"][0]["text"]
    silence = (
        f"{stack.alertmanager.url}/#/silences/new?filter=%7Balertname%3D%22ComfyUIOutOfMemory%22"
        "%2Ccomfyui%3D%22oom%22%2Cerror_type%3D%22oom%22%7D"
    )
    dashboard = (
        "http://localhost:3000/d/comfyui-overview/comfyui-overview?var-instance="
        f"{exporter.replace(':', '%3A')}&var-comfyui=oom"
    )
    for part in (
        "*Severity:* `critical`",
        f"*Instance:* `oom` on `{exporter}`",
        "*Error type:* `oom`",
        f"http://{exporter}/failures",
        f"<{RUNBOOKS}#comfyuioutofmemory|Runbook>",
        f"<{dashboard}|Dashboard>",
        f"<{silence}|Silence this group>",
    ):
        assert part in text, f"{part!r} not in the Slack message:\n{text}"
    # increase() extrapolates, and this series is young: one failure may read as "about 2"
    assert re.search(r"about [12] prompt\(s\) failed with error_type oom", text), text

    mail = stack.smtp.wait_for(lambda m: m.subject == title, 15, f"e-mail {title!r}")
    assert mail.auth_login == SMTP_USER
    body = mail.part("text/plain")
    for part in (
        f"{RUNBOOKS}#comfyuioutofmemory",
        dashboard,
        silence,
        "Error type: oom",
        f"exporter {exporter}",
    ):
        assert part in body, f"{part!r} not in the e-mail:\n{body}"

    # The relay accepted Alertmanager's webhook (it checks the bearer token) and journaled it.
    (journal,) = stack.wait_journal("oom", ["firing"])
    (alert,) = journal["alerts"]
    assert alert["labels"] == {
        "alertname": "ComfyUIOutOfMemory",
        "comfyui": "oom",
        "error_type": "oom",
        "instance": exporter,
        "job": "comfyui-exporter",
        "severity": "critical",
    }
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#comfyuioutofmemory"
    # one failure, one alert: nothing else about this instance
    assert stack.slack("oom") == [title]
    print(f"\nOOM -> Slack {slack.received_at - started:.2f} s, -> e-mail {mail.received_at - started:.2f} s")


def test_delivery_latency(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Failure -> Slack, over LATENCY_RUNS runs, each on a fresh instance (a fresh alert group)."""
    latencies = []
    for i in range(1, LATENCY_RUNS + 1):
        name = f"lat{i}"
        started = time.time()
        stack.sims[name].enqueue("oom")
        slack = stack.wait_slack(_title("firing", "critical", "ComfyUIOutOfMemory", name, "oom"), timeout=30)
        latencies.append(round(slack.received_at - started, 3))
    report = {
        "what": "failure (POST /_sim/enqueue oom) -> Slack webhook received",
        "profile": {**FAST, **AM_TIMING, "exporter_poll_interval": "1s"},
        "runs": len(latencies),
        "seconds": latencies,
        "p50_s": round(statistics.median(latencies), 3),
        "max_s": max(latencies),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    with capsys.disabled():
        print(
            f"\n[e2e] failure -> Slack delivery over {len(latencies)} runs: p50 {report['p50_s']:.2f} s, "
            f"max {report['max_s']:.2f} s {latencies} (written to {REPORT})"
        )
    assert len(latencies) >= 5
    # The fast profile promises seconds: scrape 1 s + eval 1 s + group_wait 1 s + poll 1 s.
    assert report["max_s"] < 10, report


def test_silence_suppresses_until_expired(stack: Stack) -> None:
    am = stack.alertmanager
    silence_id = am.add_silence({"alertname": "ComfyUIOutOfMemory", "comfyui": "silenced"}, 600, "e2e")
    stack.sims["silenced"].enqueue("oom")

    def suppressed() -> bool:
        alerts = stack.am_alerts("silenced")
        return bool(alerts) and alerts[0]["status"]["silencedBy"] == [silence_id]

    wait_until(suppressed, 20, what="the OOM alert in Alertmanager, silenced")
    assert stack.am_alerts("silenced")[0]["status"]["state"] == "suppressed"
    time.sleep(4)  # group_wait + group_interval and then some: nothing may be delivered
    assert stack.slack("silenced") == [] and stack.mails("silenced") == [] and stack.journal("silenced") == []

    # Expire it the way docs/alerting.md says, with amtool.
    result = run_tool("amtool", f"--alertmanager.url={am.url}", "silence", "expire", silence_id)
    assert result.returncode == 0, result.stderr
    expired = time.time()
    slack = stack.wait_slack(
        _title("firing", "critical", "ComfyUIOutOfMemory", "silenced", "oom"), timeout=20
    )
    stack.smtp.wait_for(lambda m: "ComfyUIOutOfMemory silenced" in m.subject, 15, "e-mail after expiry")
    print(f"\nsilence expired -> Slack {slack.received_at - expired:.2f} s")


def test_burst_of_failures_is_one_notification(stack: Stack) -> None:
    sim = stack.sims["burst"]
    sim.enqueue("runtime_error", count=50)
    title = _title("firing", "warning", "ComfyUIPromptFailures", "burst", "node_exception")
    stack.wait_slack(title, timeout=30)
    wait_until(
        lambda: sim.outcomes()["failures"]["node_exception"] == 50, 30, what="50 failures in the simulator"
    )
    expr = 'sum(comfyui_prompt_failures_total{comfyui="burst"})'
    wait_until(lambda: stack.prometheus.query_value(expr) == 50, 20, what="Prometheus to see all 50 failures")
    time.sleep(5)  # two more group intervals: a per-failure notification would show up by now
    assert stack.slack("burst") == [title], stack.slack("burst")
    (firing,) = stack.wait_journal("burst", ["firing"])
    assert len(firing["alerts"]) == 1, firing
    assert stack.mails("burst") == []  # a warning is chat only


def test_stuck_prompt_fires_and_resolves_but_progressing_prompt_does_not(stack: Stack) -> None:
    """An 18 s prompt without progress fires ComfyUIPromptStuck (threshold 10 s here) and resolves
    when it ends. Meanwhile, on another instance, a prompt as long that reports progress throughout never
    even becomes a pending alert."""
    stack.sims["oom"].enqueue("success", seconds=18, progress_steps=36)  # idle since the OOM test
    stack.sims["stuck"].enqueue("success", seconds=18, progress_steps=0)
    firing = stack.wait_slack(_title("firing", "warning", "ComfyUIPromptStuck", "stuck"), timeout=30)
    text = firing.json["attachments"][0]["text"]
    # ComfyUI 0.8 broadcasts progress_state when a node starts, so the exporter may have seen one
    # "progress" at the start; either way the description says how long it has been silent.
    assert re.search(
        r"has been running for [\d.ms ]+ "
        r"(and has reported no progress|and its last progress event was [\d.ms ]+ ago)",
        text,
    ), text
    resolved = stack.wait_slack(_title("resolved", "warning", "ComfyUIPromptStuck", "stuck"), timeout=30)
    assert resolved.json["attachments"][0]["color"] == "good"
    assert "[RESOLVED]" in resolved.json["attachments"][0]["text"]
    stack.wait_journal("stuck", ["firing", "resolved"])

    prom = stack.prometheus
    longest = prom.query_value('max_over_time(comfyui_running_prompt_age_seconds{comfyui="oom"}[1m])')
    assert longest is not None and longest > 12, f"the progressing prompt ran only {longest} s"
    assert prom.query('ALERTS{alertname="ComfyUIPromptStuck",comfyui="oom"}[1m]') == []
    assert not [t for t in stack.slack("oom") if "ComfyUIPromptStuck" in t]


def test_critical_failures_send_resolved_mail(stack: Stack) -> None:
    """The OOM of the first test stops being new after new_failure_window (20 s here): resolved
    Slack message and resolved e-mail."""
    resolved = _title("resolved", "critical", "ComfyUIOutOfMemory", "oom", "oom")
    stack.wait_slack(resolved, timeout=40)
    mail = stack.smtp.wait_for(lambda m: m.subject == resolved, 15, "resolved e-mail")
    assert "Resolved:" in mail.part("text/plain")
    stack.wait_journal("oom", ["firing", "resolved"])


def test_comfyui_killed_only_comfyui_down_arrives(stack: Stack) -> None:
    """A ComfyUI dies mid-prompt. ComfyUIDown pages; the prompt that can no longer finish turns
    into ComfyUIPromptStuck, which reaches Alertmanager and is inhibited by ComfyUIDown."""
    sim = stack.sims["killed"]
    sim.enqueue("success", seconds=120, progress_steps=0)
    running = 'comfyui_queue_prompts{comfyui="killed",state="running"}'
    wait_until(lambda: stack.prometheus.query_value(running) == 1, 15, what="the prompt to be seen running")
    sim.kill()
    down = _title("firing", "critical", "ComfyUIDown", "killed")
    stack.wait_slack(down, timeout=30)
    stack.smtp.wait_for(lambda m: m.subject == down, 15, "ComfyUIDown e-mail")

    def stuck_inhibited() -> bool:
        return any(
            a["labels"]["alertname"] == "ComfyUIPromptStuck" and a["status"]["inhibitedBy"]
            for a in stack.am_alerts("killed")
        )

    wait_until(stuck_inhibited, 30, what="ComfyUIPromptStuck in Alertmanager, inhibited")
    time.sleep(4)  # two group intervals for anything uninhibited to show up
    assert stack.slack("killed") == [down], stack.slack("killed")
    assert stack.mails("killed") == [down]
    assert {j["groupLabels"]["alertname"] for j in stack.journal("killed")} == {"ComfyUIDown"}
