"""The prompts the benchmarks submit: a realistic mix, posted like real clients post them.

Why not ``/_sim/enqueue`` for load: the simulator builds each UI workflow with a loop that
re-serialises the document per node (≈130 ms for 50 KB), so 20 prompts/s with frontend workflows
would measure the simulator's generator. Here the workflow document is built once and only its
``id`` changes per prompt, and prompts go through ``POST /prompt`` exactly as the ComfyUI frontend
and API clients send them. ``/prompt`` is counted in ``/_sim/stats`` under its own key, which no
monitor uses, so it never pollutes a monitor's cost.

Mix (the same for history fill and for load): 10 % frontend submissions carrying a 50 KB UI
workflow (``extra_pnginfo.workflow``), 10 % failures spread over the six failure kinds the simulator
knows (≈3–4 KB history items with tracebacks), 2 % interrupted, the rest small API prompts.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .common import ensure_paths, http_json

ensure_paths()

from comfyui_exporter.sim.control import fault_graph, workflow_document  # noqa: E402
from comfyui_exporter.sim.testing import SimHandle, free_port  # noqa: E402

FAILURE_MODES = ("oom", "cuda_error", "file_not_found", "model_load_error", "runtime_error", "value_error")
# What each failure mode is classified as (the exporter's error_type, the simulator's ledger key).
ERROR_TYPE_OF = {
    "oom": "oom",
    "cuda_error": "cuda_error",
    "file_not_found": "model_not_found",
    "model_load_error": "model_load_error",
    "runtime_error": "node_exception",
    "value_error": "node_exception",
}


@dataclass(frozen=True)
class Mix:
    frontend_share: float = 0.10
    failure_share: float = 0.10
    interrupt_share: float = 0.02
    workflow_kb: float = 50.0
    # Run time of load prompts: a few progress steps, so no-client_id prompts broadcast progress.
    run_seconds: float = 0.01
    progress_steps: int = 2


@dataclass(frozen=True)
class PromptSpec:
    outcome: str  # "success", "interrupt" or a FAILURE_MODES member
    frontend: bool
    client_id: str | None


def draw(mix: Mix, rng: random.Random) -> PromptSpec:
    """One prompt of the mix."""
    r = rng.random()
    if r < mix.failure_share:
        outcome = FAILURE_MODES[rng.randrange(len(FAILURE_MODES))]
    elif r < mix.failure_share + mix.interrupt_share:
        outcome = "interrupt"
    else:
        outcome = "success"
    frontend = rng.random() < mix.frontend_share
    if frontend:
        client_id: str | None = f"frontend-tab-{rng.randrange(4)}"
    else:
        client_id = "api-client" if rng.random() < 0.5 else None
    return PromptSpec(outcome, frontend, client_id)


class BodyFactory:
    """``POST /prompt`` bodies as bytes; the 50 KB workflow is serialised once and re-stamped."""

    def __init__(self, mix: Mix, seed: int = 1) -> None:
        self.mix = mix
        self.rng = random.Random(seed)
        doc = workflow_document(mix.workflow_kb, random.Random(seed))
        self._workflow_id = doc["id"]
        self._workflow_json = json.dumps(doc)

    def body(self, spec: PromptSpec, fast: bool = False) -> bytes:
        """``fast``: no run time (history fill), otherwise the mix's run time and progress steps."""
        seconds = 0.0 if fast else self.mix.run_seconds
        steps = 0 if fast else self.mix.progress_steps
        if spec.outcome == "success":
            mode = "pass" if fast else "sleep"
        elif spec.outcome == "interrupt":
            mode, seconds, steps = "interrupt", max(seconds, 0.005), 0
        else:
            mode = spec.outcome
        graph = fault_graph(mode, seconds, steps, self.rng.randrange(1, 2**62))
        parts = ['{"prompt": ', json.dumps(graph)]
        if spec.client_id is not None:
            parts.append(f', "client_id": {json.dumps(spec.client_id)}')
        if spec.frontend:
            workflow = self._workflow_json.replace(self._workflow_id, f"{self.rng.getrandbits(128):032x}", 1)
            parts.append(', "extra_data": {"extra_pnginfo": {"workflow": ' + workflow + "}}")
        parts.append("}")
        return "".join(parts).encode()


class Submitter:
    """A keep-alive HTTP client for ``POST /prompt`` (TCP_NODELAY: no 40 ms delayed-ACK stalls)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def post(self, body: bytes) -> str | None:
        """Submit; returns the prompt id, or None when ComfyUI is down (the client's loss)."""
        for _ in range(2):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                self._conn.request("POST", "/prompt", body, {"Content-Type": "application/json"})
                response = self._conn.getresponse()
                raw = response.read()
                if response.status != 200:
                    return None
                return str(json.loads(raw)["prompt_id"])
            except (OSError, http.client.HTTPException, ValueError):
                self.close()
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class LoadCounts:
    submitted: int = 0
    rejected: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


class LoadGenerator:
    """Poisson arrivals at ``rate`` prompts/s from a thread; ``set_rate`` changes it on the fly."""

    def __init__(self, port: int, mix: Mix, rate: float = 0.0, seed: int = 7) -> None:
        self.mix = mix
        self.rate = rate
        self.rng = random.Random(seed)
        self.factory = BodyFactory(mix, seed)
        self.submitter = Submitter(port)
        self.counts = LoadCounts()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        self.submitter.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            if self.rate <= 0:
                self._wake.wait(0.5)
                self._wake.clear()
                next_at = time.monotonic()
                continue
            next_at += self.rng.expovariate(self.rate)
            delay = next_at - time.monotonic()
            if delay > 0 and self._wake.wait(delay):
                self._wake.clear()
                next_at = time.monotonic()
                continue
            if next_at < time.monotonic() - 1.0:  # fell behind (server down or slow): do not burst
                next_at = time.monotonic()
            spec = draw(self.mix, self.rng)
            if self.submitter.post(self.factory.body(spec)) is None:
                self.counts.rejected += 1
            else:
                self.counts.submitted += 1
                self.counts.by_outcome[spec.outcome] = self.counts.by_outcome.get(spec.outcome, 0) + 1


# ------------------------------------------------------------------------ simulator with a history


def start_sim(prefill: int = 0, seed: int = 11, **options: Any) -> SimHandle:
    """A simulator subprocess on a free loopback port (the caller stops it)."""
    opts: dict[str, Any] = {"seed": seed, **options}
    if prefill:
        opts["prefill_history"] = prefill
    return SimHandle(free_port(), opts, start_timeout=60).start()


def plan_history(size: int, mix: Mix, seed: int = 3) -> tuple[int, list[PromptSpec]]:
    """Split ``size`` entries of the mix into (tiny API successes to prefill, prompts to post).

    The simulator's ``--prefill-history`` builds small API-prompt entries instantly; the other kinds
    are posted. Prefilled entries end up oldest; the last few posted are small API prompts too, so
    the newest entry (what an idle safety poll returns) is the common kind, not a 50 KB outlier.
    """
    rng = random.Random(seed)
    specs = [draw(mix, rng) for _ in range(size)]
    plain = [s for s in specs if s.outcome == "success" and not s.frontend]
    rich = [s for s in specs if not (s.outcome == "success" and not s.frontend)]
    tail = min(5, len(plain))
    return len(plain) - tail, rich + plain[:tail]


def fill_history(sim: SimHandle, size: int, mix: Mix, posted: list[PromptSpec], seed: int = 5) -> None:
    """Post the non-prefilled part of a history and wait until it has executed."""
    factory = BodyFactory(mix, seed)
    submitter = Submitter(sim.port)
    try:
        for spec in posted:
            if submitter.post(factory.body(spec, fast=True)) is None:
                raise RuntimeError("simulator rejected a fill prompt")
    finally:
        submitter.close()
    sim.wait_idle(timeout=120)


def history_sim(size: int, mix: Mix, seed: int = 3) -> SimHandle:
    """A simulator holding ``size`` history entries of the mix (the caller stops it)."""
    prefill, posted = plan_history(size, mix, seed)
    sim = start_sim(prefill=prefill)
    try:
        fill_history(sim, size, mix, posted)
    except BaseException:
        sim.stop()
        raise
    return sim


def trim_history(sim: SimHandle, size: int) -> int:
    """Delete the oldest entries beyond ``size`` (what ComfyUI's own cap does at 10,000).

    Used between measurement windows only, so its own requests never count against a monitor.
    Returns how many entries were deleted.
    """
    excess = int(sim.stats()["history_len"]) - size
    if excess <= 0:
        return 0
    oldest = http_json("GET", f"{sim.url}/history?offset=0&max_items={excess}", timeout=60) or {}
    ids = list(oldest)
    if ids:
        http_json("POST", f"{sim.url}/history", {"delete": ids}, timeout=60)
    return len(ids)
