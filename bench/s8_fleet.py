"""Section 8 — fleet: one exporter watching many ComfyUI instances, many exporters behind file_sd,
and what Prometheus pays for 32 and 256 instances (rule evaluation, the dashboard's queries).

Why three parts: (a) a studio can run one exporter for a whole host or rack, so the exporter's
cost per watched instance must stay flat as it watches more; (b) or one exporter per host, so
Prometheus scrapes many small targets (file_sd), and the per-exporter overhead counts; (c)
Prometheus is where a big fleet first costs something: the shipped rules and the dashboard's
queries run over every instance's series. (c) uses synthetic exporters (bench/fleetsynth.py) built
from a real exporter's output, because 256 simulators do not fit on a 2-core machine.

Simulated instances run in one process (bench/fleetsim.py), each with the demo mix at a low rate.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .common import (
    REPO,
    SectionResult,
    Summary,
    child_env,
    ensure_paths,
    fmt_bytes,
    fmt_ms,
    http_get,
    http_json,
    metric_values,
    process_cpu_seconds,
    rss_bytes,
)
from .fleetsynth import SyntheticFleet, split_exposition, write_prometheus_config

ensure_paths()

from tests.support.stack import ExporterProcess  # noqa: E402

RATE = 0.1  # prompts/s per simulated instance (demo mix: ~25 % failures)
FULL = {
    "one_exporter": (1, 8, 32),
    "exporters": 32,
    "synthetic": ((32, False), (256, False), (256, True)),  # (instances, storm)
    "window": 30.0,
    "warm": 10.0,
    "interval": 5.0,
}
# Smoke: the harness only (CI): no file_sd fleet, one tiny synthetic fleet, 1 s intervals.
SMOKE = {
    "one_exporter": (1, 2),
    "exporters": 0,
    "synthetic": ((4, False),),
    "window": 2.0,
    "warm": 1.0,
    "interval": 1.0,
}


def _fleetsim(count: int) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fleetsim", "--count", str(count), "--rate", str(RATE)],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"bench.fleetsim exited with {proc.wait()}")
    return proc, json.loads(line)["ports"]


def _exporter(ports: list[int]) -> ExporterProcess:
    args = ["--no-gpu"]
    for i, port in enumerate(ports):
        args += ["--comfyui-url", f"sim-{i:03d}=http://127.0.0.1:{port}"]
    exp = ExporterProcess(args)
    exp.start()
    return exp


def _scrape(url: str, n: int = 5) -> tuple[int, Summary]:
    sizes, times = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        body = http_get(f"{url}/metrics")
        times.append(time.perf_counter() - t0)
        sizes.append(len(body))
    return int(statistics.median(sizes)), Summary.of(times)


def one_exporter(
    ports: list[int], counts: tuple[int, ...], cfg: dict[str, Any], log: Callable[[str], None]
) -> tuple[list[dict[str, float]], str]:
    rows, template = [], ""
    for n in counts:
        exp = _exporter(ports[:n])
        try:
            assert exp.proc is not None
            time.sleep(cfg["warm"])
            cpu0, t0 = process_cpu_seconds(exp.proc.pid), time.monotonic()
            time.sleep(cfg["window"])
            cpu = (process_cpu_seconds(exp.proc.pid) - cpu0) / (time.monotonic() - t0)
            rss = rss_bytes(exp.proc.pid)
            size, scrape = _scrape(exp.url)
            template = exp.metrics_text()
        finally:
            exp.stop()
        rows.append({"n": n, "cpu": cpu, "rss": rss, "bytes": size, "scrape_s": scrape.median})
        log(
            f"   one exporter x {n}: cpu {cpu * 100:.2f} %, rss {fmt_bytes(rss)}, /metrics {fmt_bytes(size)} "
            f"in {fmt_ms(scrape.median)}"
        )
    return rows, template


def _prom_metrics(prom: Any, name: str) -> list[tuple[dict[str, str], float]]:
    return metric_values(http_get(f"{prom.url}/metrics").decode(), name)


def _rule_groups(prom: Any, samples: int, period: float) -> dict[str, float]:
    """Each rule group's longest evaluation over ``samples`` readings."""
    worst: dict[str, float] = {}
    for _ in range(samples):
        for labels, value in _prom_metrics(prom, "prometheus_rule_group_last_duration_seconds"):
            group = labels.get("rule_group", "?").split(";")[-1]
            worst[group] = max(worst.get(group, 0.0), value)
        time.sleep(period)
    return worst


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel, PromQL) of every dashboard query, variables at "All" (the heaviest selection)."""
    sys.path.insert(0, str(REPO / "tests" / "deploy"))
    from grafana_queries import every_query_at_all

    return every_query_at_all(REPO / "grafana" / "dashboards")


def _time_queries(prom: Any, queries: list[tuple[str, str]]) -> list[tuple[str, float, str]]:
    """Median of 3 wall-clock times of each query over the last hour (step 15 s), slowest first."""
    timed = []
    end = time.time()
    for owner, expr in queries:
        times, status = [], "?"
        for _ in range(3):
            t0 = time.perf_counter()
            body = http_json("GET", f"{prom.url}/api/v1/query_range?" + _qs(expr, end - 3600, end, 15))
            times.append(time.perf_counter() - t0)
            status = (body or {}).get("status", "?")
        timed.append((owner, statistics.median(times), status))
    return sorted(timed, key=lambda t: -t[1])


def _qs(expr: str, start: float, end: float, step: float) -> str:
    import urllib.parse

    return urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})


def prometheus_part(
    workdir: Path,
    sd: list[dict[str, Any]],
    samples: int,
    log: Callable[[str], None],
    label: str,
    interval: float,
) -> dict[str, Any]:
    from tests.support.binaries import start_prometheus, wait_until

    config = write_prometheus_config(workdir, REPO / "prometheus" / "rules", sd, f"{interval:g}s")
    with start_prometheus(config, workdir) as prom:
        expect = len(sd)
        wait_until(
            lambda: (prom.query_value('count(up{job="comfyui-exporter"} == 1)') or 0) >= expect,
            60,
            what=f"{expect} targets up",
        )
        wait_until(
            lambda: (prom.query_value('min(count_over_time(up{job="comfyui-exporter"}[5m]))') or 0) >= 3,
            60,
            what="three scrapes",
        )
        groups = _rule_groups(prom, samples, interval)
        scrape = [float(r["value"][1]) for r in prom.query('scrape_duration_seconds{job="comfyui-exporter"}')]
        samples_scraped = prom.query_value('sum(scrape_samples_scraped{job="comfyui-exporter"})') or 0
        series = prom.query_value("prometheus_tsdb_head_series") or 0
        series = series or sum(v for _, v in _prom_metrics(prom, "prometheus_tsdb_head_series"))
        queries = _time_queries(prom, _dashboard_queries())
        prom_rss = rss_bytes(prom.process.pid)
        rules = sorted(
            (
                (r["evaluationTime"], r["name"])
                for g in prom.get("/api/v1/rules")["data"]["groups"]
                for r in g["rules"]
            ),
            reverse=True,
        )
    failed = [q for q in queries if q[2] != "success"]
    out = {
        "groups": groups,
        "rules_total_s": sum(groups.values()),
        "scrape": Summary.of(scrape),
        "samples": samples_scraped,
        "series": series,
        "queries": queries,
        "failed_queries": failed,
        "prom_rss": prom_rss,
        "costliest_rules": rules[:3],
    }
    log(
        f"   {label}: rules {fmt_ms(out['rules_total_s'])} (slowest group {max(groups, key=groups.get)} "
        f"{fmt_ms(max(groups.values()))}), {series:.0f} series, heaviest query {queries[0][0]} "
        f"{fmt_ms(queries[0][1])}; {len(failed)} queries not 'success'"
    )
    return out


def many_exporters(
    ports: list[int], count: int, cfg: dict[str, Any], workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    exporters: list[ExporterProcess] = []
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            exporters = list(pool.map(lambda p: _exporter([p]), ports[:count]))
        sd = [{"targets": [f"127.0.0.1:{e.port}"]} for e in exporters]
        time.sleep(cfg["warm"])
        pids = [e.proc.pid for e in exporters if e.proc is not None]
        cpu0, t0 = sum(process_cpu_seconds(p) for p in pids), time.monotonic()
        prom = prometheus_part(
            workdir,
            sd,
            max(2, int(cfg["window"] / cfg["interval"])),
            log,
            f"{count} exporters",
            cfg["interval"],
        )
        cpu = (sum(process_cpu_seconds(p) for p in pids) - cpu0) / (time.monotonic() - t0)
        rss = [rss_bytes(p) for p in pids]
    finally:
        for e in exporters:
            e.stop()
    return {"count": count, "cpu_each": cpu / count, "rss": Summary.of(rss), "prom": prom}


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    cfg = SMOKE if smoke else FULL
    result = SectionResult("fleet", "8. Fleet")
    most = max(max(cfg["one_exporter"]), cfg["exporters"])
    sim, ports = _fleetsim(most)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        try:
            rows, template = one_exporter(ports, cfg["one_exporter"], cfg, log)
            fleet = (
                many_exporters(ports, cfg["exporters"], cfg, Path(tmp) / "file-sd", log)
                if cfg["exporters"]
                else {}
            )
        finally:
            sim.terminate()
            sim.wait(10)
        synthetic = {}
        lines = split_exposition(template, "sim-000")
        for n, storm in cfg["synthetic"]:
            per = max(1, n // 32)
            synth = SyntheticFleet(lines, "sim-000", n // per, per, cfg["interval"], storm).start()
            label = f"{n} synthetic instances" + (", storm" if storm else "")
            try:
                synthetic[(n, storm)] = prometheus_part(
                    Path(tmp) / f"synthetic-{n}",
                    synth.file_sd(),
                    max(2, int(cfg["window"] / cfg["interval"])),
                    log,
                    label,
                    cfg["interval"],
                )
            finally:
                synth.stop()
    _report(result, rows, fleet, synthetic, smoke)
    return result


def _report(
    result: SectionResult,
    rows: list[dict[str, float]],
    fleet: dict[str, Any],
    synthetic: dict[int, dict[str, Any]],
    smoke: bool,
) -> None:
    from .fleetreport import report

    report(result, rows, fleet, synthetic, smoke)
