"""The HA pipeline on 127.0.0.1, started once per test module.

    simulators ─► exporter ─► prometheus-1 ┐ (replica="prometheus-1", dropped from alerts)
                          └─► prometheus-2 ┴─► alertmanager-1 ◄─gossip─► alertmanager-2 ◄─► alertmanager-3
                                                      │ (only one of them notifies)
                                        lossy link ─► relay (real subprocess) ─► fake DingTalk robot
                                                      Slack: HTTP sink, e-mail: aiosmtpd sink

Configs are the SHIPPED ones: prometheus/prometheus-ha.yml (with its rule files) and
alertmanager/alertmanager.yml, rewritten only where a test must (intervals, addresses, secret
files, `chat: dingtalk` so critical alerts go to the relay's DingTalk target).

Test timings: scrape/eval 1 s, group_wait 1 s, group_interval 5 s, peer_timeout 2 s, gossip 50 ms,
push-pull 1 s; Prometheus resends firing alerts every second (``--rules.alert.resend-delay=1s``:
an alert dropped while a replica had no Alertmanager would otherwise wait a minute).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.binaries import (
    Alertmanager,
    Prometheus,
    free_port,
    prepare_alertmanager_config,
    prepare_prometheus_config,
    require_binary,
    require_module,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from tests.support.sinks import HTTPSink, SMTPSink
from tests.support.stack import ExporterProcess

from .ha_parts import LossyLink, RelayProcess, RobotsThread

REPO = Path(__file__).resolve().parents[2]
HA_PROMETHEUS = REPO / "prometheus" / "prometheus-ha.yml"

# The exporter's own event alerts (issue 13) go to every Alertmanager of the cluster, one
# `--alertmanager.url` per peer, labelled for the same chat as the rule alerts; each failure's rule
# alert is then inhibited by its event alert, so a failure is still one robot message.
EXPORTER_EVENT_ALERTS = True

PEER_TIMEOUT_S = 2.0
GROUP_WAIT_S = 1.0
AM_TIMING = {"group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h"}
CLUSTER_FLAGS = [
    f"--cluster.peer-timeout={PEER_TIMEOUT_S:g}s",
    "--cluster.gossip-interval=50ms",
    "--cluster.pushpull-interval=1s",
    "--cluster.probe-interval=500ms",
    "--cluster.probe-timeout=300ms",
    "--cluster.settle-timeout=5s",
    "--cluster.reconnect-interval=1s",
]
PROM_FLAGS = ["--enable-feature=expand-external-labels", "--rules.alert.resend-delay=1s"]
RELAY_TOKEN = "ha-test-relay-token"
ROBOT_SECRET = "SECha0000000000000001"
SMTP_USER = "comfyui-alertmanager@example.com"
SMTP_PASSWORD = "ha-smtp-password"


@dataclass
class HAStack:
    sims: dict[str, Any]
    exporter: ExporterProcess
    relay: RelayProcess
    link: LossyLink
    robots: RobotsThread
    alertmanagers: list[Alertmanager]
    prometheus: list[Prometheus]
    http: HTTPSink
    smtp: SMTPSink
    notes: dict[str, Any] = field(default_factory=dict)

    # ---- what a person received
    def messages(self, comfyui: str) -> list[Any]:
        """DingTalk messages the robot accepted that are about instance ``comfyui``."""
        return [m for m in self.robots.accepted() if f"{comfyui}" in m.text]

    def mails(self, comfyui: str) -> list[str]:
        return [m.subject for m in self.smtp.messages() if m.subject.split()[3:4] == [comfyui]]

    def wait_message(self, comfyui: str, timeout: float = 40) -> Any:
        return wait_until(
            lambda: self.messages(comfyui), timeout, interval=0.05, what=f"a DingTalk message about {comfyui}"
        )[0]

    def senders(self, comfyui: str) -> list[str]:
        """externalURL of every notification about ``comfyui`` the relay received for DingTalk:
        which Alertmanager sent it."""
        return [
            r["payload"]["externalURL"]
            for r in self.relay.records("received")
            if r["payload"]["groupLabels"].get("comfyui") == comfyui
        ]

    # ---- the cluster
    def live_alertmanagers(self) -> list[Alertmanager]:
        return [am for am in self.alertmanagers if am.process.poll() is None]

    def by_position(self) -> list[Alertmanager]:
        """Alertmanagers in the cluster's notification order: position = index of a peer's name in
        the sorted member names; position p waits p × peer_timeout before it notifies."""
        live = self.live_alertmanagers()
        names = {am.get("/api/v2/status")["cluster"]["name"]: am for am in live}
        return [names[name] for name in sorted(names)]

    def am_alerts(self, am: Alertmanager, comfyui: str, alertname: str | None = None) -> list[dict[str, Any]]:
        return [
            a
            for a in am.alerts()
            if a["labels"].get("comfyui") == comfyui and alertname in (None, a["labels"].get("alertname"))
        ]

    def fail(self, comfyui: str) -> float:
        """One OOM on instance ``comfyui``; returns when it was enqueued (time.time())."""
        started = time.time()
        self.sims[comfyui].enqueue("oom")
        return started


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Child processes started inside see these environment variables (Prometheus expands
    ${PROMETHEUS_REPLICA} in its external labels)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _prometheus_config(out: Path, exporter: str, relay: str, alertmanagers: list[str]) -> Path:
    path = prepare_prometheus_config(
        out,
        targets={"comfyui-exporter": [exporter], "comfyui-alert-relay": [relay]},
        alertmanagers=alertmanagers,
        scrape_interval="1s",
        evaluation_interval="1s",
        source=HA_PROMETHEUS,
    )
    config = yaml.safe_load(path.read_text())
    # prepare_prometheus_config replaces the list of Alertmanagers; the shipped dedup must stay.
    assert config["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    assert config["global"]["external_labels"]["replica"] == "${PROMETHEUS_REPLICA}"
    config["global"]["external_labels"]["chat"] = "dingtalk"  # critical -> the relay's DingTalk robot
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _relay_config(workdir: Path, robot_url: str, port: int) -> RelayProcess:
    from comfyui_exporter.relay.testing import write_relay_config

    workdir.mkdir(parents=True, exist_ok=True)
    targets = {"dingtalk": {"type": "dingtalk", "url": robot_url, "secret": ROBOT_SECRET, "language": "en"}}
    path, _ = write_relay_config(
        workdir, targets, token=RELAY_TOKEN, listen=f"127.0.0.1:{port}", timezone="UTC"
    )
    return RelayProcess(path, port, workdir / "relay.log", workdir / "journal.jsonl")


@contextlib.contextmanager
def ha_stack(workdir: Path, instances: list[str]) -> Iterator[HAStack]:
    require_binary("prometheus")
    require_binary("alertmanager")
    for module in ("aiosmtpd", "aiohttp", "jinja2"):
        require_module(module)
    from comfyui_exporter.sim.testing import SimHandle

    sims = {name: SimHandle(free_port(), {}) for name in instances}
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=len(sims)) as pool:
            list(pool.map(lambda s: s.start(), sims.values()))
        for sim in sims.values():
            stack.callback(sim.stop)
        robots = RobotsThread(ROBOT_SECRET).start()
        stack.callback(robots.stop)
        http = stack.enter_context(HTTPSink())
        smtp = stack.enter_context(SMTPSink(username=SMTP_USER, password=SMTP_PASSWORD))
        relay = _relay_config(workdir / "relay", robots.dingtalk_url, free_port()).start()
        stack.callback(relay.stop)
        link = LossyLink(relay.port).start()
        stack.callback(link.stop)

        am_config = prepare_alertmanager_config(
            workdir / "alertmanager",
            slack_url=f"{http.url}/slack",
            smtp_address=smtp.address,
            smtp_password=SMTP_PASSWORD,
            relay_url=link.url,
            relay_token=RELAY_TOKEN,
            **AM_TIMING,
        )
        gossip = [free_port() for _ in range(3)]
        alertmanagers: list[Alertmanager] = []
        for i, port in enumerate(gossip):
            peers = [f"--cluster.peer=127.0.0.1:{p}" for p in gossip if p != port]
            cluster = [f"--cluster.listen-address=127.0.0.1:{port}", *peers, *CLUSTER_FLAGS]
            alertmanagers.append(
                stack.enter_context(
                    start_alertmanager(am_config, workdir / f"alertmanager-{i + 1}", cluster_args=cluster)
                )
            )

        exporter_args = ["--poll-interval", "1"]
        for name, sim in sims.items():
            exporter_args += ["--comfyui-url", f"{name}={sim.url}"]
        if EXPORTER_EVENT_ALERTS:
            exporter_args += [f"--alertmanager.url={am.url}" for am in alertmanagers]
            exporter_args += ["--alertmanager.label=chat=dingtalk"]
        exporter = ExporterProcess(["--no-gpu", *exporter_args]).start()
        stack.callback(exporter.stop)

        proms: list[Prometheus] = []
        for i in (1, 2):
            config = _prometheus_config(
                workdir / f"prometheus-{i}",
                f"127.0.0.1:{exporter.port}",
                relay.address,
                [am.address for am in alertmanagers],
            )
            with _env(PROMETHEUS_REPLICA=f"prometheus-{i}"):
                proms.append(
                    stack.enter_context(
                        start_prometheus(config, workdir / f"prometheus-{i}", extra_args=PROM_FLAGS)
                    )
                )
        ha = HAStack(sims, exporter, relay, link, robots, alertmanagers, proms, http, smtp)
        try:
            _wait_until_watching(ha)
        except TimeoutError as exc:
            logs = "\n".join(f"--- {am.name} {am.address}\n{am.log_tail(15)}" for am in alertmanagers)
            raise AssertionError(f"{exc}\n{logs}\n--- exporter\n{exporter.logs()[-2000:]}") from exc
        yield ha


def _wait_until_watching(ha: HAStack) -> None:
    """Every peer settled and sees the other two; both replicas know all three Alertmanagers and
    have two samples of every instance's failure counters (increase() needs two)."""

    def settled() -> bool:
        statuses = [am.get("/api/v2/status")["cluster"] for am in ha.alertmanagers]
        return all(s["status"] == "ready" and len(s["peers"]) == 3 for s in statuses)

    wait_until(settled, 30, what="the Alertmanager cluster to settle with three peers")
    for prom in ha.prometheus:
        wait_until(
            lambda p=prom: len(p.active_alertmanagers()) == 3,
            30,
            what=f"{prom.name} to discover three Alertmanagers",
        )
    expr = 'count(count_over_time(comfyui_prompt_failures_total{error_type="oom"}[1m]) >= 2)'
    for prom in ha.prometheus:
        wait_until(
            lambda p=prom: p.query_value(expr) == len(ha.sims),
            60,
            what=f"two samples of every instance's counters on {prom.workdir.name}",
        )
