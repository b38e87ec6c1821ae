"""Scenario driver: built-ins, files, the drawn prompt mix, and a live run."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from comfyui_exporter.sim.prompts import enqueue_bodies
from comfyui_exporter.sim.scenario import BUILTINS, draw_prompt, load_scenario
from comfyui_exporter.sim.testing import running_sim


def test_builtins_exist_and_demo_is_failure_rich() -> None:
    assert {"idle", "demo", "load"} <= set(BUILTINS)
    assert load_scenario("idle")["rate"] == 0
    demo = load_scenario("demo")
    assert demo["stuck"]["share"] > 0 and demo["bursts"]["size"] > 1
    assert sum(w for k, w in demo["outcomes"].items() if k != "success") >= 0.2
    with pytest.raises(ValueError, match="unknown scenario"):
        load_scenario("no-such-scenario")


def test_drawn_mix_follows_weights_and_shares() -> None:
    scn = {
        "outcomes": {"success": 3, "oom": 1},
        "client_id_share": 0.25,
        "workflow": {"share": 0.5, "kb": 4},
        "run_seconds": {"dist": "uniform", "min": 1, "max": 2},
        "progress_steps": [1, 3],
    }
    rng = random.Random(7)
    draws = [draw_prompt(scn, rng) for _ in range(4000)]
    counts = Counter(d["outcome"] for d in draws)
    assert 0.7 < counts["success"] / 4000 < 0.8
    assert 0.2 < sum("client_id" in d for d in draws) / 4000 < 0.3
    assert 0.45 < sum("workflow_kb" in d for d in draws) / 4000 < 0.55
    assert all(1 <= d["seconds"] <= 2 and 1 <= d["progress_steps"] <= 3 for d in draws)
    body = enqueue_bodies(draws[0], rng)[0]
    assert body["prompt"]["2"]["class_type"] == "FaultInjection"


def test_yaml_scenario_file_runs_live(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("base: load\nrate: 40\noutcomes: {success: 1, oom: 1}\nrun_seconds: 0\n")
    assert load_scenario(str(path))["rate"] == 40
    with running_sim(scenario=str(path), seed=3) as sim:
        time.sleep(1.5)
        out = sim.outcomes()
        assert out["finished"] >= 20
        assert out["success"] > 0 and out["failures"]["oom"] > 0
        assert out["finished"] == out["success"] + out["interrupted"] + sum(out["failures"].values())
        total = sim.get("/api/jobs?status=failed&limit=1")["pagination"]["total"]
        # the driver keeps submitting: the jobs API sees every failure the ground truth had
        assert out["failures"]["oom"] <= total <= sim.outcomes()["failures"]["oom"]


def test_json_scenario_with_stuck_prompts(tmp_path: Path) -> None:
    path = tmp_path / "stuck.json"
    path.write_text(json.dumps({"rate": 30, "stuck": {"share": 1.0, "seconds": 30}}))
    with running_sim(scenario=str(path)) as sim:
        time.sleep(0.6)
        stats = sim.stats()
        assert stats["running"] is not None and stats["queue_pending"] >= 3
        job = sim.get(f"/api/jobs/{stats['running']}")
        assert job["status"] == "in_progress"


def test_demo_reaches_a_steady_state_and_opens_with_a_failure() -> None:
    """A single worker drains the demo's arrivals: utilisation well below 1, and the queue of a
    simulated 6 hours stays short (before, 0.53 prompts/s met ~5 s of work each: 391 pending after
    17 minutes, then ComfyUIQueueBacklog)."""
    demo = load_scenario("demo")
    rng = random.Random(11)
    per_second = demo["rate"] + demo["bursts"]["size"] / demo["bursts"]["every_seconds"]
    mean_run = sum(draw_prompt(demo, rng)["seconds"] for _ in range(20000)) / 20000
    assert per_second * mean_run < 0.6, (per_second, mean_run)
    # the queue over 6 simulated hours: Poisson arrivals + bursts, one worker, FIFO
    arrivals, t = [], 0.0
    while t < 6 * 3600:
        t += rng.expovariate(demo["rate"])
        arrivals.append(t)
    every = demo["bursts"]["every_seconds"]
    arrivals += [k * every for k in range(1, int(6 * 3600 / every)) for _ in range(demo["bursts"]["size"])]
    busy_until, finishes, longest = 0.0, [], 0
    for at in sorted(arrivals):
        finishes = [f for f in finishes if f > at]
        longest = max(longest, len(finishes))
        busy_until = max(busy_until, at) + draw_prompt(demo, rng)["seconds"]
        finishes.append(busy_until)
    assert longest < 40, longest  # never a backlog (the backlog alert's default is far above)
    assert demo["opening"]["outcome"] == "oom" and demo["opening"]["after_seconds"] >= 10
