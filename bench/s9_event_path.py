"""Event path vs rule path: failure (ComfyUI's time) → Slack and → DingTalk, shipped DEFAULT config.

``python -m bench.s9_event_path [--failures N]`` runs this alone and writes its own section of
bench/RESULTS.md (between ``<!-- event-path:start -->`` and ``<!-- event-path:end -->``), leaving
the other sections as they are.

The shipped prometheus.yml (scrape and evaluation 15 s), rules and alertmanager.yml (rule routes
group_wait 30 s; event route group_wait 1 s), exporter defaults (--poll-interval 5). The same
simulated failures are seen by two exporters: exporter E pushes events (``--alertmanager.url``,
instances named ``ev*``) and exporter R does not (instances ``rule*``), so every failure is measured
on both paths in one run; E's own rule alerts are inhibited by its event alerts, R's are not.
Every failure is a fresh alert group (a new comfyui × error_type). Chat labels: ``chat=slack,dingtalk``
(exporter E ``--alertmanager.label``, Prometheus ``external_labels``), so each alert reaches Slack
(an HTTP sink) and the real relay → fake DingTalk robot. The relay's rate windows are scaled by 0.25
so that 20 messages in a minute are sent, not merged (a robot limit, not a latency setting).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import ensure_paths, percentile

ensure_paths()

from comfyui_exporter.sim.testing import SimHandle  # noqa: E402
from tests.support.stack import ExporterProcess  # noqa: E402

from .s2_latency import ERROR_TYPE, FAILURE_OUTCOMES, write_time  # noqa: E402
from .workload import start_sim  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- event-path:start -->", "<!-- event-path:end -->"
RULE_ALERT = {"oom": "ComfyUIOutOfMemory", "cuda_error": "ComfyUICudaError"}


def _title_has(title: str, alertname: str, comfyui: str, error_type: str) -> bool:
    return title.startswith("[FIRING") and f" {alertname} {comfyui} {error_type}" in title


def _robot_has(text: str, alertname: str, comfyui: str, et: str) -> bool:
    """One message about it, or a line of a message the relay merged under the robot's rate limit."""
    if re.search(rf"{alertname} · {comfyui} · {et}\b", text):
        return True
    return (
        alertname in text
        and re.search(rf"(实例|Instance)\s*[:：]\s*{comfyui}\b", text) is not None
        and re.search(rf"(Error type|错误类型)\s*[:：]\s*{et}\b", text) is not None
    )


def _arrivals(
    http_sink: Any, relay: Any, alertname: str, comfyui: str, et: str, deadline: float
) -> tuple[float, float]:
    """When the Slack sink and the fake DingTalk robot got the message about (alertname, comfyui, et)."""
    slack = ding = None
    while (slack is None or ding is None) and time.monotonic() < deadline:
        titles = [(r, r.json["attachments"][0]["title"]) for r in http_sink.requests("/slack")]
        slack = slack or next((r for r, t in titles if _title_has(t, alertname, comfyui, et)), None)
        ding = ding or next(
            (
                m
                for m in relay.accepted()
                if _robot_has(m.text, alertname, comfyui, et)
            ),
            None,
        )
        time.sleep(0.05)
    if slack is None or ding is None:
        titles = [r.json["attachments"][0]["title"] for r in http_sink.requests("/slack")]
        raise TimeoutError(
            f"no message for {alertname}/{comfyui}/{et} (Slack {slack is not None}, DingTalk "
            f"{ding is not None}); Slack titles {titles}; robot {[m.text[:160] for m in relay.accepted()]}"
        )
    return slack.received_at, ding.at


def measure(failures: int, log: Callable[[str], None] = print) -> dict[str, list[float]]:
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
    workdir = Path(tempfile.mkdtemp(prefix="bench-events-"))
    n_sims = max(1, -(-failures // len(FAILURE_OUTCOMES)))
    sims: dict[int, SimHandle] = {i: start_sim(seed=i) for i in range(n_sims)}
    relay = RelayStack(workdir / "relay", token, scale=0.25).start()
    exporters: list[ExporterProcess] = []
    out: dict[str, list[float]] = {
        "event_slack": [],
        "event_dingtalk": [],
        "rule_slack": [],
        "rule_dingtalk": [],
    }
    try:
        with HTTPSink() as http_sink, SMTPSink(username="bench@example.com", password="bench-pw") as smtp:
            am_config = prepare_alertmanager_config(
                workdir / "alertmanager",
                slack_url=f"{http_sink.url}/slack",
                smtp_address=smtp.address,
                smtp_password="bench-pw",
                relay_url=relay.url,
                relay_token=token,
            )  # timings as shipped
            with start_alertmanager(am_config, workdir / "alertmanager") as am:
                ev_args = [
                    "--no-gpu",
                    "--alertmanager.url",
                    am.url,
                    "--alertmanager.label",
                    "chat=slack,dingtalk",
                ]
                rule_args = ["--no-gpu"]
                for i, sim in sims.items():
                    ev_args += ["--comfyui-url", f"ev{i}={sim.url}"]
                    rule_args += ["--comfyui-url", f"rule{i}={sim.url}"]
                exporters += [ExporterProcess(ev_args).start(), ExporterProcess(rule_args).start()]
                prom_config = prepare_prometheus_config(
                    workdir / "prometheus",
                    targets={
                        "comfyui-exporter": [f"127.0.0.1:{e.port}" for e in exporters],
                        "comfyui-alert-relay": [relay.url.removeprefix("http://")],
                    },
                    alertmanagers=[am.address],
                )  # scrape and evaluation as shipped (15 s)
                config = yaml.safe_load(prom_config.read_text())
                config["global"]["external_labels"] = {"chat": "slack,dingtalk"}
                prom_config.write_text(yaml.safe_dump(config, sort_keys=False))
                with start_prometheus(prom_config, workdir / "prometheus") as prom:
                    prom.wait_for_alertmanager(timeout=60)
                    prom.wait_for_scrapes("comfyui-exporter", targets=2, samples=2, timeout=120)
                    probes = []
                    for k in range(failures):
                        i, outcome = k // len(FAILURE_OUTCOMES), FAILURE_OUTCOMES[k % len(FAILURE_OUTCOMES)]
                        (pid,) = sims[i].enqueue(outcome=outcome)
                        probes.append((i, ERROR_TYPE[outcome], sims[i], pid))
                        time.sleep(3.0)
                    deadline = time.monotonic() + 150
                    for i, et, sim, pid in probes:
                        written = write_time(sim, pid)
                        rule_name = RULE_ALERT.get(et, "ComfyUIPromptFailures")
                        for path, alertname, comfyui in (
                            ("event", "ComfyUIPromptFailed", f"ev{i}"),
                            ("rule", rule_name, f"rule{i}"),
                        ):
                            slack_at, ding_at = _arrivals(http_sink, relay, alertname, comfyui, et, deadline)
                            out[f"{path}_slack"].append(slack_at - written)
                            out[f"{path}_dingtalk"].append(ding_at - written)
                    # the event path must not double-notify: E's rule alerts stay inhibited
                    doubled = [
                        r.json["attachments"][0]["title"]
                        for r in http_sink.requests("/slack")
                        if " ev" in r.json["attachments"][0]["title"]
                        and "ComfyUIPromptFailed" not in r.json["attachments"][0]["title"]
                    ]
                    out["doubled"] = [float(len(doubled))]
    finally:
        for exporter in exporters:
            exporter.stop()
        relay.stop()
        for sim in sims.values():
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    log(
        f"event → Slack p50 {statistics.median(out['event_slack']):.2f} s, "
        f"rule → Slack p50 {statistics.median(out['rule_slack']):.2f} s"
    )
    return out


def _fmt(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} s | {max(values):.2f} s | {min(values):.2f} s"


def section(out: dict[str, list[float]], failures: int) -> str:
    ev, rule, ev_ding = out["event_slack"], out["rule_slack"], out["event_dingtalk"]
    ratio = percentile(rule, 50) / percentile(ev, 50)
    met = percentile(ev, 50) <= 1.5 and max(ev) <= 3 and percentile(ev_ding, 50) <= 1.5 and max(ev_ding) <= 3
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        START,
        "## 9. Event path vs rule path (shipped default configuration)",
        "",
        f"`python -m bench.s9_event_path --failures {failures}`, {when}. Failure = the timestamp ComfyUI "
        "wrote into the history entry (simulator, same host clock); arrival = the Slack sink or the fake "
        "DingTalk robot receiving the message. Shipped prometheus.yml (scrape and evaluation 15 s), rules, "
        "alertmanager.yml (rule routes group_wait 30 s, event route group_wait 1 s), exporter defaults "
        "(--poll-interval 5); each failure is a fresh alert group; the same failures measured on both paths "
        "in one run (two exporters on the same simulators). The relay's rate windows are scaled ×0.25 so "
        "that 20 messages a minute are not merged.",
        "",
        "| path | failures | p50 | max | min |",
        "|---|---|---|---|---|",
        f"| event → Slack (exporter → Alertmanager API → slack_configs) | {len(ev)} | {_fmt(ev)} |",
        f"| event → DingTalk (→ relay → fake robot) | {len(ev_ding)} | {_fmt(ev_ding)} |",
        f"| rule → Slack (exporter → Prometheus → Alertmanager) | {len(rule)} | {_fmt(rule)} |",
        f"| rule → DingTalk | {len(out['rule_dingtalk'])} | {_fmt(out['rule_dingtalk'])} |",
        "",
        f"Target event path p50 ≤ 1.5 s, max ≤ 3 s: **{'met' if met else 'NOT met'}** (Slack p50 "
        f"{percentile(ev, 50):.2f} s, max {max(ev):.2f} s; DingTalk p50 {percentile(ev_ding, 50):.2f} s, "
        f"max {max(ev_ding):.2f} s). Rule path / event path p50 (Slack): **{ratio:.0f}×**. Rule alerts of "
        f"the pushing exporter that were not inhibited (double notifications): {int(out['doubled'][0])}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = RESULTS) -> None:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if START in current and END in current:
        head, rest = current.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        current = head + text + tail
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s9_event_path", description=__doc__)
    parser.add_argument("--failures", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--json", default="", help="also write the raw seconds here")
    args = parser.parse_args(argv)
    out = measure(args.failures)
    text = section(out, args.failures)
    write_section(text, Path(args.out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
