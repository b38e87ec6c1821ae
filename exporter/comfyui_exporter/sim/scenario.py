"""Scenario driver: a synthetic user population submitting prompts to the simulated server.

A scenario (built-in name, or a YAML/JSON file) fixes the arrival rate, the mix of outcomes,
run-time distribution, progress granularity, stuck prompts, bursts, the share of prompts sent
with/without ``client_id`` and frontend workflow sizes. Prompts go through ``Instance.submit``
exactly like ``POST /prompt``; while the simulated process is down (restart) arrivals are lost,
as they would be for real clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prompts import enqueue_bodies

if TYPE_CHECKING:
    from .host import SimHost

BUILTINS: dict[str, dict[str, Any]] = {
    "idle": {"rate": 0.0},
    # Steady state: ~0.11 prompts/s against ~3 s of mean run time keeps the single worker about
    # 35 % busy, so bursts drain within seconds and the queue never grows (tests/sim checks it).
    # The opening OOM comes after Prometheus has scraped twice, so the demo alerts within ~30 s.
    "demo": {
        "rate": 0.08,
        "outcomes": {
            "success": 0.70,
            "oom": 0.06,
            "cuda_error": 0.02,
            "file_not_found": 0.05,
            "model_load_error": 0.03,
            "runtime_error": 0.05,
            "value_error": 0.03,
            "interrupt": 0.04,
            "blocked": 0.02,
        },
        "run_seconds": {"dist": "lognormal", "median": 2.0, "sigma": 0.7, "max": 20.0},
        "progress_steps": [2, 8],
        "client_id_share": 0.5,
        "workflow": {"share": 0.3, "kb": 16},
        "stuck": {"share": 0.01, "seconds": 60.0},
        "bursts": {"every_seconds": 120.0, "size": 4},
        "opening": {"after_seconds": 20.0, "outcome": "oom"},
        "preview_share": 0.3,
        "text_share": 0.3,
    },
    "load": {
        "rate": 20.0,
        "outcomes": {"success": 0.9, "oom": 0.03, "runtime_error": 0.04, "file_not_found": 0.03},
        "run_seconds": {"dist": "fixed", "value": 0.0},
        "progress_steps": 0,
        "client_id_share": 0.2,
    },
}


def load_scenario(name_or_path: str) -> dict[str, Any]:
    """Resolve a built-in name or read a YAML/JSON file (optionally ``{"base": "demo", ...}``)."""
    if name_or_path in BUILTINS:
        return {"name": name_or_path, **BUILTINS[name_or_path]}
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown scenario {name_or_path!r} (built-ins: {', '.join(BUILTINS)})")
    text = path.read_text()
    if path.suffix.lower() in (".yml", ".yaml"):
        import yaml

        spec = yaml.safe_load(text) or {}
    else:
        spec = json.loads(text)
    if not isinstance(spec, dict):
        raise ValueError(f"scenario {path} must be a mapping")
    base = spec.pop("base", None)
    merged = {**BUILTINS.get(base, {}), **spec} if base else spec
    merged.setdefault("name", path.stem)
    return merged


def _draw_seconds(spec: Any, rng: random.Random) -> float:
    if spec is None:
        return 0.0
    if isinstance(spec, int | float):
        return float(spec)
    dist = spec.get("dist", "fixed")
    if dist == "fixed":
        value = float(spec.get("value", 0.0))
    elif dist == "uniform":
        value = rng.uniform(float(spec.get("min", 0.0)), float(spec.get("max", 1.0)))
    elif dist == "exponential":
        value = rng.expovariate(1.0 / max(1e-6, float(spec.get("mean", 1.0))))
    elif dist == "lognormal":
        value = rng.lognormvariate(
            math.log(max(1e-6, float(spec.get("median", 1.0)))), float(spec.get("sigma", 0.5))
        )
    else:
        raise ValueError(f"unknown run_seconds dist {dist!r}")
    return min(value, float(spec.get("max", value)))


def _draw_int(spec: Any, rng: random.Random) -> int:
    if isinstance(spec, list | tuple):
        return rng.randint(int(spec[0]), int(spec[1]))
    return int(spec or 0)


def draw_prompt(scn: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One ``/_sim/enqueue``-style spec drawn from the scenario's distributions."""
    weights = scn.get("outcomes") or {"success": 1.0}
    outcome = rng.choices(list(weights), weights=[float(w) for w in weights.values()])[0]
    seconds = _draw_seconds(scn.get("run_seconds"), rng)
    steps = _draw_int(scn.get("progress_steps", 0), rng)
    stuck = scn.get("stuck") or {}
    if stuck and rng.random() < float(stuck.get("share", 0.0)):
        outcome, seconds, steps = "success", float(stuck.get("seconds", 300.0)), 0
    spec: dict[str, Any] = {"outcome": outcome, "seconds": seconds, "progress_steps": steps}
    if rng.random() < float(scn.get("client_id_share", 0.0)):
        spec["client_id"] = f"scenario-user-{rng.randrange(int(scn.get('clients', 4)))}"
    wf = scn.get("workflow") or {}
    if wf and rng.random() < float(wf.get("share", 0.0)):
        spec["workflow_kb"] = float(wf.get("kb", 16))
    spec["emit_preview"] = rng.random() < float(scn.get("preview_share", 0.0))
    spec["emit_text"] = rng.random() < float(scn.get("text_share", 0.0))
    return spec


class ScenarioDriver:
    """Runs a scenario against the simulator until cancelled (or ``duration`` elapses)."""

    def __init__(self, sim: SimHost, scenario: dict[str, Any], rate: float | None = None) -> None:
        self.sim = sim
        self.scn = scenario
        self.rate = float(rate if rate is not None else scenario.get("rate", 0.0))
        self.rng = random.Random(sim.rng.random())
        self.submitted = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._arrivals()))
        if self.scn.get("bursts"):
            self._tasks.append(loop.create_task(self._bursts()))
        if self.scn.get("opening"):
            self._tasks.append(loop.create_task(self._opening()))
        for _ in range(int(self.scn.get("initial_queue", 0))):
            self.submit_one()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def submit_one(self) -> None:
        inst = self.sim.instance
        if inst is None or not self.sim.up:
            return  # the server is down: the user's request fails
        for body in enqueue_bodies(draw_prompt(self.scn, self.rng), self.rng):
            inst.submit(body)
            self.submitted += 1

    async def _arrivals(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(self.scn["duration"]) if self.scn.get("duration") else None
        if self.rate <= 0:
            return
        while deadline is None or loop.time() < deadline:
            await asyncio.sleep(self.rng.expovariate(self.rate))
            self.submit_one()

    async def _opening(self) -> None:
        """One prompt with a fixed outcome after a delay: a demo shows a failure early."""
        opening = self.scn["opening"]
        await asyncio.sleep(float(opening.get("after_seconds", 0.0)))
        inst = self.sim.instance
        if inst is None or not self.sim.up:
            return
        spec = {**draw_prompt(self.scn, self.rng), "outcome": str(opening.get("outcome", "oom"))}
        spec["seconds"] = 0.5
        for body in enqueue_bodies(spec, self.rng):
            inst.submit(body)
            self.submitted += 1

    async def _bursts(self) -> None:
        burst = self.scn["bursts"]
        while True:
            await asyncio.sleep(float(burst.get("every_seconds", 60.0)))
            for _ in range(int(burst.get("size", 5))):
                self.submit_one()
