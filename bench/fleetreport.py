"""Section 8's tables, targets and headlines (kept apart from the measuring code in s8_fleet)."""

from __future__ import annotations

from typing import Any

from .common import SectionResult, Table, Target, fmt_bytes, fmt_ms

RULES_TARGET_S = 1.0


def report(
    result: SectionResult,
    rows: list[dict[str, float]],
    fleet: dict[str, Any],
    synthetic: dict[int, dict[str, Any]],
    smoke: bool,
) -> None:
    t = Table(
        "(a) One exporter watching N simulated ComfyUI instances (demo mix, 0.1 prompts/s each)",
        [
            "N",
            "CPU (% of a core)",
            "CPU per instance",
            "RSS",
            "RSS per instance (marginal)",
            "/metrics size",
            "per instance",
            "scrape time",
        ],
    )
    base = rows[0]
    for r in rows:
        n = r["n"]
        marginal = (r["rss"] - base["rss"]) / (n - base["n"]) if n > base["n"] else float("nan")
        t.rows.append(
            [
                f"{n:g}",
                f"{r['cpu'] * 100:.2f} %",
                f"{r['cpu'] * 100 / n:.3f} %",
                fmt_bytes(r["rss"]),
                fmt_bytes(marginal),
                fmt_bytes(r["bytes"]),
                fmt_bytes(r["bytes"] / n),
                fmt_ms(r["scrape_s"]),
            ]
        )
        result.numbers[f"one_exporter_{n:g}_cpu_per_instance"] = r["cpu"] / n
        result.numbers[f"one_exporter_{n:g}_rss_bytes"] = r["rss"]
        result.numbers[f"one_exporter_{n:g}_scrape_bytes"] = r["bytes"]
        result.numbers[f"one_exporter_{n:g}_scrape_seconds"] = r["scrape_s"]
    result.tables.append(t)

    p = fleet["prom"] if fleet else {"failed_queries": []}
    if fleet:
        _file_sd_table(result, fleet, p)

    sizes = list(synthetic)  # (instances, storm) in run order
    t3 = Table(
        "(c) Prometheus over synthetic fleets (shipped rules)",
        [
            "instances",
            "failure counters",
            "head series",
            "rule groups, total (max of readings)",
            *[f"group {g}" for g in sorted(synthetic[sizes[0]]["groups"])],
            "slowest dashboard query",
            "2nd slowest",
            "Prometheus RSS",
            "costliest rules (last evaluation)",
        ],
    )
    for key in sizes:
        n, storm = key
        s = synthetic[key]
        q = s["queries"]
        tag = f"{n}{'_storm' if storm else ''}"
        t3.rows.append(
            [
                str(n),
                "all advancing (storm)" if storm else "still (healthy)",
                f"{s['series']:.0f}",
                fmt_ms(s["rules_total_s"]),
                *[fmt_ms(s["groups"].get(g, float("nan"))) for g in sorted(synthetic[sizes[0]]["groups"])],
                f"{fmt_ms(q[0][1])} ({q[0][0]})",
                f"{fmt_ms(q[1][1])} ({q[1][0]})",
                fmt_bytes(s["prom_rss"]),
                ", ".join(f"{name} {fmt_ms(t)}" for t, name in s["costliest_rules"]),
            ]
        )
        result.numbers[f"synthetic_{tag}_rules_total_s"] = s["rules_total_s"]
        result.numbers[f"synthetic_{tag}_heaviest_query_s"] = q[0][1]
        result.numbers[f"synthetic_{tag}_series"] = s["series"]
    result.tables.append(t3)

    first, last = rows[0], rows[-1]
    per_first, per_last = first["cpu"] / first["n"], last["cpu"] / last["n"]
    healthy = [k for k in sizes if not k[1]]
    big_key = max(healthy)
    big = synthetic[big_key]
    result.targets.append(
        Target(
            f"exporter CPU per instance flat from {first['n']:g} to {last['n']:g} instances",
            "per-instance CPU at the largest N ≤ 1.5× that at N=1",
            f"{per_last * 100:.3f} % vs {per_first * 100:.3f} % of a core",
            per_last <= 1.5 * per_first,
        )
    )
    result.targets.append(
        Target(
            f"rule evaluation for {big_key[0]} healthy instances",
            f"< {RULES_TARGET_S:g} s (all groups together)",
            fmt_ms(big["rules_total_s"]),
            big["rules_total_s"] < RULES_TARGET_S,
        )
    )
    failed = sum(len(s["failed_queries"]) for s in synthetic.values()) + len(p["failed_queries"])
    result.numbers["dashboard_queries_failed"] = failed
    result.headlines.append(
        f"Fleet: one exporter watches {last['n']:g} instances at {per_last * 100:.2f} % of a core and "
        f"{fmt_bytes(last['bytes'] / last['n'])} of /metrics per instance; the shipped rules evaluate "
        f"{big_key[0]} instances in {fmt_ms(big['rules_total_s'])}, the heaviest dashboard query takes "
        f"{fmt_ms(big['queries'][0][1])}"
    )
    storms = [k for k in sizes if k[1]]
    if storms:
        storm = synthetic[storms[-1]]
        result.numbers["storm_rules_total_s"] = storm["rules_total_s"]
        result.notes.append(
            f"First limit: Prometheus' rule evaluation in an alert storm. With {storms[-1][0]} instances all "
            f"failing at once (every failure counter rising) the rules take {fmt_ms(storm['rules_total_s'])} "
            f"per evaluation against {fmt_ms(big['rules_total_s'])} for a healthy fleet of the same size: "
            "each firing alert is templated (summary, description) at every evaluation. Costliest: "
            + ", ".join(f"{name} {fmt_ms(t)}" for t, name in storm["costliest_rules"])
            + ". The exporter is not the limit (flat per instance; one process per host or per rack)."
        )
    result.notes += [
        "Simulated instances: bench/fleetsim.py runs N full simulator instances (own port, queue, history, "
        "websocket) in one process; each runs the demo mix at 0.1 prompts/s. Exporter CPU is utime+stime of "
        "its process over the window (after a warm-up), RSS from /proc.",
        "(c) is synthetic (bench/fleetsynth.py): a real exporter's per-instance lines replicated per "
        "instance (32 synthetic exporters with N/32 instances each, counters advancing every "
        "scrape period; failure counters only in the storm row), so Prometheus sees "
        "the series count and shape of N instances. Rule times are the max of "
        "`prometheus_rule_group_last_duration_seconds` over the readings.",
        "Dashboard queries: every panel and variable query of grafana/dashboards/*.json with every variable "
        'at "All", as `query_range` over the last hour at a 15 s step, median of 3. The TSDB holds only '
        "the minutes of the run, so a query over a real hour of data costs more (it grows with range × "
        "series); the ranking of queries is what carries over.",
    ]
    if smoke:
        result.notes.append("Smoke run: tiny fleets, not for quoting.")


def _file_sd_table(result: SectionResult, fleet: dict[str, Any], p: dict[str, Any]) -> None:
    t = Table(
        f"(b) {fleet['count']} exporters (one instance each) behind Prometheus file_sd",
        [
            "CPU per exporter",
            "RSS per exporter",
            "scrape duration (Prometheus)",
            "samples per scrape",
            "head series",
            "rule groups, total",
            "slowest dashboard query",
            "Prometheus RSS",
        ],
    )
    t.rows.append(
        [
            f"{fleet['cpu_each'] * 100:.2f} %",
            fleet["rss"].fmt(fmt_bytes),
            p["scrape"].fmt(fmt_ms),
            f"{p['samples'] / fleet['count']:.0f}",
            f"{p['series']:.0f}",
            fmt_ms(p["rules_total_s"]),
            f"{fmt_ms(p['queries'][0][1])} ({p['queries'][0][0]})",
            fmt_bytes(p["prom_rss"]),
        ]
    )
    result.tables.append(t)
    result.numbers["exporters_cpu_each"] = fleet["cpu_each"]
    result.numbers["exporters_rss_each"] = fleet["rss"].median
    result.numbers["exporters_rules_total_s"] = p["rules_total_s"]
