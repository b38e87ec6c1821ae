"""Every dashboard panel returns data from a real Prometheus that scraped the real exporter.

Set-up (once per module, ~30 s):

* two simulated ComfyUIs (``comfyui_exporter.sim``): ``sim`` runs a scenario with every failure class,
  an interrupt, a restart, a stuck prompt (running, no progress) and a queue behind it; ``idle`` only
  answers, so the ``$comfyui`` multi-value selection really is ``(idle|sim)``;
* the exporter (``python -m comfyui_exporter.cli``, poll interval 1 s) watching both;
* GPU series: the GPU engineer's real collector (``comfyui_exporter.gpu.collector.GpuCollector``) fed by
  the fake NVML (``comfyui_exporter.gpu.fake.FakeNvml``) replaying tests/fixtures/nvml/xid_events.json
  (two L40S, XID 13 then 94), served by this test on a loopback port. The exporter under test runs with
  ``--no-gpu`` (there is no NVML here); Prometheus relabels the GPU target's ``instance`` to the
  exporter's, as if both came from one /metrics page;
* Prometheus (1 s scrape and evaluation) with the project's alert rules, so ``ALERTS`` is real.

Then each panel's queries are run the way Grafana runs them: variables resolved through the label-values
API, then substituted (``$__rate_interval``, ``$__range``, ``$comfyui`` -> ``(idle|sim)``, ...), range
queries over the scenario with Grafana's step, instant queries at its end. A panel passes when every one
of its queries returns at least one series with a finite value; the test id names the panel.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, load_dashboard, panel_by_id, panel_cases, query_targets
from grafana_interpolate import TimeContext, Var, interpolate
from grafana_queries import dashboard_variables, variable_queries, variable_query_as_promql

pytestmark = pytest.mark.e2e

NVML_CAPTURE = REPO / "tests" / "fixtures" / "nvml" / "xid_events.json"
SCRAPE_S = 1.0


@dataclass
class Live:
    prom: Any  # tests.support.binaries.Prometheus
    from_s: float
    to_s: float
    variables: dict[str, dict[str, Var]]  # dashboard uid -> variables as selected
    discovered: dict[str, dict[str, list[str]]]  # dashboard uid -> variable -> values Prometheus offered
    exporter_logs: str


def _prom_api(prom: Any, path: str, **params: Any) -> Any:
    body = prom.get(path, **params)
    assert body.get("status") == "success", body
    return body["data"]


def _label_values(prom: Any, query: str, from_s: float, to_s: float) -> list[str]:
    """What Grafana's Prometheus data source does for label_values(selector, label)."""
    selector, label = variable_query_as_promql(query)
    if label is None:
        raise AssertionError(f"only label_values() variables are supported here: {query}")
    params = {"match[]": selector, "start": int(from_s), "end": int(to_s)}
    return sorted(_prom_api(prom, f"/api/v1/label/{urllib.parse.quote(label)}/values", **params))


def _gpu_exposition(port: int) -> tuple[Any, Any]:
    """Serve the GPU collector over a fake NVML on 127.0.0.1:port; returns (fake nvml, stop callable)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from comfyui_exporter.gpu.collector import GpuCollector
    from comfyui_exporter.gpu.fake import FakeNvml

    nvml = FakeNvml.from_file(NVML_CAPTURE)
    collector = GpuCollector(nvml, xid_poll_ms=50)
    collector.start()
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)
        collector.close()

    return nvml, stop


def _scenario(sim: Any, prom: Any, nvml: Any) -> None:
    """Failures of every class, an interrupt, a restart, then a stuck prompt with a queue behind it."""
    from tests.support.binaries import wait_until

    def q(expr: str) -> float:
        return prom.query_value(expr) or 0.0

    for outcome in (
        "oom",
        "cuda_error",
        "file_not_found",
        "model_load_error",
        "runtime_error",
        "value_error",
    ):
        sim.enqueue(outcome)
    sim.enqueue("success", seconds=0.4, progress_steps=4, count=3)
    sim.enqueue("interrupt", seconds=0.3)
    sim.wait_idle(20)
    wait_until(
        lambda: q('sum(comfyui_prompt_failures_total{comfyui="sim"})') >= 6, 20, what="failures scraped"
    )
    nvml.advance()  # the second NVML sample: XID 94 on GPU 1
    sim.restart(down_seconds=0.5)
    wait_until(lambda: q('comfyui_restarts_total{comfyui="sim"}') >= 1, 20, what="the restart to be counted")
    wait_until(lambda: q('comfyui_up{comfyui="sim"}') == 1, 20, what="sim up again")
    sim.enqueue("success", seconds=0.3, progress_steps=3, count=2)
    sim.enqueue("oom")
    sim.wait_idle(20)
    # stuck: runs for a minute without a single progress event; three prompts queue behind it
    sim.enqueue("success", seconds=60, progress_steps=0)
    sim.enqueue("success", seconds=0.1, count=3)
    wait_until(lambda: q('comfyui_queue_prompts{comfyui="sim", state="pending"}') >= 3, 20, what="a queue")
    wait_until(
        lambda: q('comfyui_running_prompt_progress_age_seconds{comfyui="sim"}') >= 5,
        20,
        what="a stuck running prompt",
    )
    wait_until(lambda: prom.query('ALERTS{alertstate="firing"}'), 20, what="an alert to fire")
    time.sleep(2 * SCRAPE_S)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from tests.support.binaries import require_binary, start_prometheus
    from tests.support.stack import free_port, running_exporter

    require_binary("prometheus")
    from comfyui_exporter.sim.testing import running_sim

    workdir = tmp_path_factory.mktemp("grafana-data")
    gpu_port = free_port()
    nvml, stop_gpu = _gpu_exposition(gpu_port)
    try:
        with (
            running_sim(device="cuda") as sim,
            running_sim(device="cuda") as idle,
            running_exporter(
                "--comfyui-url",
                f"sim={sim.url}",
                "--comfyui-url",
                f"idle={idle.url}",
                "--poll-interval",
                "1",
            ) as exporter,
        ):
            exporter_addr = f"127.0.0.1:{exporter.port}"
            config = {
                "global": {
                    "scrape_interval": f"{SCRAPE_S:g}s",
                    "scrape_timeout": f"{SCRAPE_S:g}s",
                    "evaluation_interval": f"{SCRAPE_S:g}s",
                },
                "rule_files": [str(REPO / "prometheus" / "rules" / "*.yml")],
                "scrape_configs": [
                    {"job_name": "comfyui-exporter", "static_configs": [{"targets": [exporter_addr]}]},
                    {
                        "job_name": "comfyui-exporter-gpu",
                        "static_configs": [{"targets": [f"127.0.0.1:{gpu_port}"]}],
                        "relabel_configs": [{"target_label": "instance", "replacement": exporter_addr}],
                    },
                ],
            }
            config_path = workdir / "prometheus.yml"
            config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            with start_prometheus(config_path, workdir) as prom:
                from_s = time.time()
                prom.wait_for_scrapes("comfyui-exporter", samples=2, timeout=30)
                prom.wait_for_scrapes("comfyui-exporter-gpu", samples=2, timeout=30)
                _scenario(sim, prom, nvml)
                to_s = time.time()
                variables, discovered = {}, {}
                for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
                    d = load_dashboard(path)
                    variables[d["uid"]], discovered[d["uid"]] = _select_variables(d, prom, from_s, to_s)
                yield Live(prom, from_s, to_s, variables, discovered, exporter.logs())
    finally:
        stop_gpu()


def _select_variables(
    d: dict[str, Any], prom: Any, from_s: float, to_s: float
) -> tuple[dict[str, Var], dict[str, list[str]]]:
    """Resolve query variables in order, like Grafana: "All" for instance (its allValue ``.*``), every
    offered value ticked for the others (a real multi-value selection)."""
    picks: dict[str, list[str]] = {"datasource": ["test"]}
    variables = dashboard_variables(d, picks)
    discovered: dict[str, list[str]] = {}
    time_ctx = TimeContext(from_s, to_s, SCRAPE_S)
    for q in variable_queries(d):
        values = _label_values(prom, interpolate(q.raw, variables, time_ctx), from_s, to_s)
        discovered[q.ref] = values
        v = variables[q.ref]
        v.values = values
        v.is_all = q.ref == "instance" and v.all_value is not None
    return variables, discovered


def _has_finite_data(result: dict[str, Any]) -> bool:
    if result["resultType"] == "matrix":
        return any(
            not math.isnan(float(v)) and not math.isinf(float(v))
            for series in result["result"]
            for _, v in series["values"]
        )
    if result["resultType"] == "vector":
        return any(not math.isnan(float(s["value"][1])) for s in result["result"])
    if result["resultType"] == "scalar":
        return not math.isnan(float(result["result"][1]))
    return False


def test_variables_offer_the_scraped_values(live: Live) -> None:
    found = live.discovered["comfyui-overview"]
    assert found["comfyui"] == ["idle", "sim"], found
    assert found["gpu"] == ["0", "1"], found
    assert len(found["instance"]) == 1, found


def test_multi_value_selection_is_a_regex_group(live: Live) -> None:
    v = live.variables["comfyui-overview"]
    ctx = TimeContext(live.from_s, live.to_s, SCRAPE_S)
    assert (
        interpolate('x{comfyui=~"$comfyui", instance=~"$instance"}', v, ctx)
        == 'x{comfyui=~"(idle|sim)", instance=~".*"}'
    )


def _run(live: Live, expr: str, instant: bool, ctx: TimeContext) -> dict[str, Any]:
    """One query as Grafana sends it: instant at the end of the range, or a range query on its step."""
    if instant:
        return _prom_api(live.prom, "/api/v1/query", query=expr, time=f"{live.to_s:.3f}")
    step = ctx.interval_ms / 1000
    start = math.floor(live.from_s / step) * step  # Grafana aligns the range to the step
    return _prom_api(
        live.prom,
        "/api/v1/query_range",
        query=expr,
        start=f"{start:.3f}",
        end=f"{live.to_s:.3f}",
        step=f"{step:g}",
    )


def test_empty_and_nan_results_count_as_no_data(live: Live) -> None:
    """The check can fail: a selector that matches nothing, and a quantile of nothing (NaN only)."""
    ctx = TimeContext(live.from_s, live.to_s, SCRAPE_S)
    assert _has_finite_data(_run(live, 'comfyui_up{comfyui="sim"}', False, ctx))
    assert not _has_finite_data(_run(live, 'comfyui_up{comfyui="no-such-instance"}', False, ctx))
    assert not _has_finite_data(_run(live, 'comfyui_up{comfyui="no-such-instance"}', True, ctx))
    nan_only = (
        "histogram_quantile(0.5, sum by (le) "
        '(rate(comfyui_prompt_queue_wait_seconds_bucket{comfyui="idle"}[4s])))'
    )
    assert not _has_finite_data(_run(live, nan_only, False, ctx))


@pytest.mark.parametrize(("path", "panel_id"), panel_cases())
def test_panel_returns_data(live: Live, path: Path, panel_id: int) -> None:
    d = load_dashboard(path)
    panel = panel_by_id(path, panel_id)
    targets = query_targets(panel)
    if not targets:  # a text panel: nothing to query, but it must say something
        assert panel.get("type") == "text" and panel.get("options", {}).get("content"), panel.get("title")
        return
    # Grafana sizes the query to the panel: max data points ~ its width in pixels (24 columns ~ 1900 px).
    width_px = int(panel["gridPos"]["w"] * 1900 / 24)
    ctx = TimeContext(live.from_s, live.to_s, SCRAPE_S, max_data_points=width_px)
    report, empty = [], []
    for t in targets:
        expr = interpolate(t["expr"], live.variables[d["uid"]], ctx)
        data = _run(live, expr, bool(t.get("instant")) and not t.get("range"), ctx)
        ok = _has_finite_data(data)
        report.append(f"  {t['refId']} {'ok   ' if ok else 'EMPTY'} {len(data['result'])} series  {expr!r}")
        if not ok:
            empty.append(t["refId"])
    assert not empty, (
        f"panel {panel['title']!r} shows no data for {empty} (range {live.to_s - live.from_s:.0f}s, "
        f"step {ctx.interval_ms / 1000:g}s, $__rate_interval {ctx.builtins()['__rate_interval']}):\n"
        + "\n".join(report)
    )
