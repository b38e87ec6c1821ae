"""Long-term storage (docs/ha.md): both Prometheus replicas of the shipped prometheus-ha.yml
remote_write to VictoriaMetrics (Debian's `victoria-metrics`), with the block docs/ha.md shows.

Checked: one series per exporter series in VictoriaMetrics (not one per replica), about one sample
per scrape interval (deduplicated), the recording rules' series arrive, a failure is counted while
one replica is down, and every dashboard query runs against VictoriaMetrics' Prometheus API.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.binaries import (
    REPO,
    Prometheus,
    Server,
    _start,
    free_port,
    http_json,
    prepare_prometheus_config,
    require_binary,
    start_prometheus,
    wait_until,
)
from tests.support.stack import ExporterProcess

from .ha_stack import HA_PROMETHEUS, PROM_FLAGS, _env

pytestmark = pytest.mark.e2e

# The remote_write block of docs/ha.md ("Long-term storage", VictoriaMetrics).
REMOTE_WRITE = [
    {"url": "{vm}/api/v1/write", "write_relabel_configs": [{"action": "labeldrop", "regex": "replica"}]}
]
SCRAPE_S = 1


@dataclass
class LTS:
    vm: Server
    prometheus: list[Prometheus]
    exporter: ExporterProcess
    sim: Any

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = http_json("GET", f"{self.vm.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@contextlib.contextmanager
def _victoria_metrics(workdir: Path) -> Iterator[Server]:
    def args(port: int, wd: Path) -> list[str]:
        return [
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={wd / 'vm-data'}",
            "-retentionPeriod=1",
            f"-dedup.minScrapeInterval={SCRAPE_S}s",
            "-search.latencyOffset=1s",  # default 30 s: recent samples would be invisible to the test
            "-search.disableCache",
        ]

    require_binary("victoria-metrics")
    server = _start(Server, "victoria-metrics", args, workdir, 30)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LTS]:
    require_binary("prometheus")
    from comfyui_exporter.sim.testing import SimHandle

    workdir = Path(tmp_path_factory.mktemp("lts"))
    with contextlib.ExitStack() as stack:
        sim = SimHandle(free_port(), {}).start()
        stack.callback(sim.stop)
        exporter = ExporterProcess(
            ["--no-gpu", "--poll-interval", "1", "--comfyui-url", f"lts-a={sim.url}"]
        ).start()
        stack.callback(exporter.stop)
        vm = stack.enter_context(_victoria_metrics(workdir / "vm"))
        proms = []
        for i in (1, 2):
            path = prepare_prometheus_config(
                workdir / f"prometheus-{i}",
                targets={"comfyui-exporter": [f"127.0.0.1:{exporter.port}"], "comfyui-alert-relay": []},
                alertmanagers=[],
                scrape_interval=f"{SCRAPE_S}s",
                evaluation_interval=f"{SCRAPE_S}s",
                source=HA_PROMETHEUS,
            )
            config = yaml.safe_load(path.read_text())
            config["remote_write"] = json.loads(json.dumps(REMOTE_WRITE).replace("{vm}", vm.url))
            for queue in config["remote_write"]:
                queue["queue_config"] = {"batch_send_deadline": "1s"}
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            with _env(PROMETHEUS_REPLICA=f"prometheus-{i}"):
                proms.append(
                    stack.enter_context(start_prometheus(path, workdir / f"prometheus-{i}", PROM_FLAGS))
                )
        env = LTS(vm, proms, exporter, sim)
        wait_until(
            lambda: (env.value('count_over_time(comfyui_up{comfyui="lts-a"}[1m])') or 0) >= 3,
            60,
            interval=0.5,
            what="samples from Prometheus in VictoriaMetrics",
        )
        yield env


def test_both_replicas_write_one_deduplicated_series(lts: LTS) -> None:
    assert [r["metric"].get("replica") for r in lts.query('comfyui_up{comfyui="lts-a"}')] == [None]
    # the replicas wrote too (each keeps `replica` locally)
    for prom in lts.prometheus:
        assert prom.query_value('count(comfyui_up{comfyui="lts-a"})') == 1
    time.sleep(12)
    samples = lts.value('count_over_time(comfyui_up{comfyui="lts-a"}[10s])') or 0
    # two writers, one sample a second each: deduplicated to about one per second
    assert 5 <= samples <= 13, f"{samples} samples in 10 s from two replicas scraping every {SCRAPE_S} s"


def test_recording_rules_and_failures_reach_long_term_storage(lts: LTS) -> None:
    wait_until(
        lambda: lts.query('comfyui:prompts_finished:rate5m{comfyui="lts-a"}'),
        30,
        interval=0.5,
        what="a recording rule's series in VictoriaMetrics",
    )
    dead, _alive = lts.prometheus
    dead.process.kill()  # the other replica alone keeps the long-term store complete
    dead.process.wait(5)
    lts.sim.enqueue("oom")
    expr = 'max(comfyui_prompt_failures_total{comfyui="lts-a",error_type="oom"})'
    wait_until(lambda: lts.value(expr) == 1, 30, interval=0.5, what="the OOM counted in VictoriaMetrics")


def test_every_dashboard_query_runs_against_victoria_metrics(lts: LTS) -> None:
    # tests/deploy's helpers, not bench/: under pytest the name `bench` is tests/bench.
    sys.path.insert(0, str(REPO / "tests" / "deploy"))
    from grafana_queries import every_query_at_all

    end = time.time()
    failed = []
    queries = every_query_at_all(REPO / "grafana" / "dashboards")
    assert len(queries) > 20
    for owner, expr in queries:
        params = urllib.parse.urlencode({"query": expr, "start": end - 600, "end": end, "step": 15})
        try:
            body = http_json("GET", f"{lts.vm.url}/api/v1/query_range?{params}")
        except urllib.error.HTTPError as err:
            body = {"status": err.code, "error": err.read()[:300]}
        if body.get("status") != "success":
            failed.append((owner, expr, body))
    assert failed == []
