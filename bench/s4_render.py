"""Section 4 — /metrics render time and scrape size, vs bare prometheus_client with the same series.

Why compare with bare prometheus_client: the exporter renders from its own state at scrape time
(custom collectors, a lock per instance, NVML read on scrape), which could be much slower than the
library's stock metric objects. The fair reference renders exactly the same samples: the bare
registry is built from *our* exposition (every family re-created as stock Gauge/Counter/Histogram
objects with the same labels and values), and the two outputs are checked to hold the same samples.

States are built in-process through the reducer (``InstanceState.apply`` behind ``Instance``) from
the same event types the sources emit, with failures spread over 300 node types (the state caps node
types at 64 per instance and exception types at 32, the rest becomes ``other``); GPUs come from the
GPU collector reading the fake NVML replay of an 8× H100 capture.
"""

from __future__ import annotations

import gzip
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from .common import REPO, SectionResult, Summary, Table, Target, ensure_paths, finite, fmt_bytes, fmt_ratio

ensure_paths()

import prometheus_client  # noqa: E402
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from comfyui_exporter.exposition.collector import ComfyUICollector, Instance  # noqa: E402
from comfyui_exporter.model.classify import classify  # noqa: E402
from comfyui_exporter.model.events import (  # noqa: E402
    DeviceStats,
    FailureDetail,
    HistoryBaseline,
    MalformedMessage,
    Outcome,
    ProgressSeen,
    PromptFinished,
    QueueJob,
    QueueSnapshot,
    RequestObserved,
    SystemStats,
    WebsocketState,
)
from comfyui_exporter.model.state import InstanceState  # noqa: E402

NVML_CAPTURE = REPO / "tests" / "fixtures" / "nvml" / "server_8x_h100.json"
EXCEPTIONS = [
    ("torch.OutOfMemoryError", "Allocation on device"),
    ("RuntimeError", "CUDA error: an illegal memory access was encountered"),
    ("FileNotFoundError", "[Errno 2] No such file or directory: 'models/checkpoints/x.safetensors'"),
    ("safetensors_rust.SafetensorError", "Error while deserializing header: HeaderTooLarge"),
    ("ValueError", "Expected 4D input"),
    *[(f"custom_nodes.pack{i}.NodeError{i}", "custom node failed") for i in range(40)],
]


@dataclass(frozen=True)
class Profile:
    instances: tuple[int, ...]
    node_types: int
    gpus: int
    prompts_per_instance: int
    rounds: int
    renders_per_round: int


FULL = Profile((1, 4, 16), 300, 8, 3000, rounds=7, renders_per_round=10)
SMOKE = Profile((1, 4, 16), 300, 8, 300, rounds=2, renders_per_round=3)


def build_instance(name: str, index: int, node_types: int, prompts: int, rng: random.Random) -> Instance:
    """One instance's state, fed through the reducer like the sources would feed it."""
    inst = Instance(InstanceState(name))
    now = 1_767_225_600.0
    inst.apply(HistoryBaseline(at=now))
    inst.apply(WebsocketState(at=now, connected=True))
    device = DeviceStats(
        # ComfyUI's --cuda-device N sets CUDA_VISIBLE_DEVICES=N: torch then calls it cuda:0.
        name="cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync",
        type="cuda",
        index=0,
        vram_total=85_520_809_984,
        vram_free=20_179_845_120,
        torch_vram_total=60_000_000_000,
        torch_vram_free=1_000_000_000,
    )
    argv = ("main.py", "--listen", "127.0.0.1", "--cuda-device", str(index % 8))
    inst.apply(SystemStats(now, "0.8.0", "3.11.7", "2.9.1+cu128", argv, (device,)))
    for i in range(prompts):
        at = now + i
        start = at - rng.uniform(0.5, 120)
        if rng.random() < 0.3:
            exc, msg = EXCEPTIONS[rng.randrange(len(EXCEPTIONS))]
            node_type = f"NodeType{rng.randrange(node_types)}"
            failure = FailureDetail(str(rng.randrange(40)), node_type, exc, msg, classify(exc, msg))
            outcome = Outcome.ERROR
        else:
            failure = None
            outcome = Outcome.INTERRUPTED if rng.random() < 0.03 else Outcome.SUCCESS
        inst.apply(
            PromptFinished(at, f"{name}-{i}", outcome, start, at, start - rng.uniform(0, 30), 2, failure)
        )
        for endpoint in ("history", "jobs") if i % 2 else ("history",):
            inst.apply(RequestObserved(at, endpoint, rng.uniform(0.0005, 0.02), True))
    inst.apply(RequestObserved(now, "system_stats", 0.002, True))
    inst.apply(MalformedMessage(now, "websocket"))
    running = (QueueJob(f"{name}-run", now - 5),)
    pending = tuple(QueueJob(f"{name}-p{k}", now - k) for k in range(3))
    inst.apply(QueueSnapshot(now, running, pending))
    inst.apply(ProgressSeen(now, f"{name}-run"))
    return inst


def build_registry(n: int, prof: Profile, with_gpu: bool) -> tuple[CollectorRegistry, Callable[[], None]]:
    rng = random.Random(n)
    instances = [
        build_instance(f"gpu{i}", i, prof.node_types, prof.prompts_per_instance, rng) for i in range(n)
    ]
    registry = CollectorRegistry()
    registry.register(ComfyUICollector(lambda: instances, clock=lambda: 1_767_225_700.0))
    close: Callable[[], None] = lambda: None  # noqa: E731
    if with_gpu:
        from comfyui_exporter.gpu.collector import GpuCollector
        from comfyui_exporter.gpu.fake import FakeNvml
        from comfyui_exporter.gpu.mapping import ComfyDevice

        devices = []
        for inst in instances:
            system = inst.state.system
            assert system is not None
            dev = system.devices[0]
            devices.append(
                ComfyDevice(inst.state.name, dev.name, dev.type, dev.index, dev.vram_total, system.argv, None)
            )
        gpu = GpuCollector(
            FakeNvml.from_file(NVML_CAPTURE), devices=lambda: devices, start_xid_thread=False, xid_poll_ms=0
        )
        gpu.start()
        registry.register(gpu)
        close = gpu.close
    return registry, close


def bare_registry(text: str) -> CollectorRegistry:
    """Stock prometheus_client metric objects holding exactly the samples of ``text``."""
    registry = CollectorRegistry()
    for family in text_string_to_metric_families(text):
        samples = family.samples
        if family.type == "histogram":
            labelnames = sorted({k for s in samples for k in s.labels if k != "le"})
            bounds = sorted(
                {float(s.labels["le"]) for s in samples if s.name.endswith("_bucket")} - {float("inf")}
            )
            metric = Histogram(
                family.name, family.documentation, labelnames, registry=registry, buckets=bounds
            )
            groups: dict[tuple[str, ...], dict[str, object]] = {}
            for s in samples:
                key = tuple(s.labels.get(k, "") for k in labelnames)
                g = groups.setdefault(key, {"buckets": {}, "sum": 0.0})
                if s.name.endswith("_bucket"):
                    g["buckets"][float(s.labels["le"])] = s.value  # type: ignore[index]
                elif s.name.endswith("_sum"):
                    g["sum"] = s.value
            for key, g in groups.items():
                child = metric.labels(*key) if labelnames else metric
                cumulative = g["buckets"]
                previous = 0.0
                for i, bound in enumerate([*bounds, float("inf")]):
                    value = cumulative.get(bound, previous)  # type: ignore[attr-defined]
                    child._buckets[i].set(value - previous)
                    previous = value
                child._sum.set(g["sum"])
            continue
        # A labelled family without children renders HELP/TYPE only; keep a label so it stays empty.
        labelnames = sorted({k for s in samples for k in s.labels}) or ([] if samples else ["unused"])
        if family.type == "counter":
            metric = Counter(family.name, family.documentation, labelnames, registry=registry)
        else:
            metric = Gauge(family.name, family.documentation, labelnames, registry=registry)
        for s in samples:
            child = metric.labels(*[s.labels.get(k, "") for k in labelnames]) if labelnames else metric
            if family.type == "counter":
                child._value.set(s.value)
            else:
                child.set(s.value)
    return registry


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _time_pair(
    ours: CollectorRegistry, bare: CollectorRegistry, prof: Profile
) -> tuple[list[float], list[float]]:
    """Per-round medians of ours and bare, renders interleaved (ours, bare, ours, ...) so that a
    change in machine load hits both sides alike: the ratio is what is claimed."""
    for _ in range(3):
        generate_latest(ours)
        generate_latest(bare)
    ours_out, bare_out = [], []
    for _ in range(prof.rounds):
        a, b = [], []
        for _ in range(prof.renders_per_round):
            t0 = time.perf_counter()
            generate_latest(ours)
            t1 = time.perf_counter()
            generate_latest(bare)
            t2 = time.perf_counter()
            a.append(t1 - t0)
            b.append(t2 - t1)
        ours_out.append(statistics.median(a))
        bare_out.append(statistics.median(b))
    return ours_out, bare_out


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    prof = SMOKE if smoke else FULL
    prometheus_client.disable_created_metrics()  # our families have no _created series; match them
    result = SectionResult("render", "4. /metrics render time and size")
    table = Table(
        f"Render time of one scrape ({prof.node_types} node types, {prof.gpus} GPUs from the fake NVML; "
        "median of per-round medians, spread over rounds)",
        [
            "instances",
            "series",
            "text bytes",
            "gzip bytes",
            "ours render",
            "bare prometheus_client",
            "ours ÷ bare",
            "ours render + gzip",
            "same samples",
        ],
    )
    worst_ratio = 0.0
    for n in prof.instances:
        log(f"  [render] {n} instance(s)")
        registry, close = build_registry(n, prof, with_gpu=True)
        try:
            text = generate_latest(registry)
            bare = bare_registry(text.decode())
            bare_text = generate_latest(bare)
            same = _samples(text.decode()) == _samples(bare_text.decode())
            ours_t, bare_t = _time_pair(registry, bare, prof)
            ratios = [a / b for a, b in zip(ours_t, bare_t, strict=True)]
            gz = []
            for _ in range(prof.rounds):
                t0 = time.perf_counter()
                gzip.compress(generate_latest(registry), compresslevel=1)
                gz.append(time.perf_counter() - t0)
            series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
            ratio = Summary.of(ratios)
            worst_ratio = max(worst_ratio, ratio.median)
            ms = lambda v: f"{v * 1000:.2f} ms"  # noqa: E731
            table.rows.append(
                [
                    str(n),
                    f"{series:,}",
                    fmt_bytes(len(text)),
                    fmt_bytes(len(gzip.compress(text, 1))),
                    Summary.of(ours_t).fmt(ms),
                    Summary.of(bare_t).fmt(ms),
                    ratio.fmt(fmt_ratio),
                    Summary.of(gz).fmt(ms),
                    "yes" if same else "**no**",
                ]
            )
            result.numbers[f"render_ms_{n}"] = Summary.of(ours_t).median * 1000
            result.numbers[f"bare_ms_{n}"] = Summary.of(bare_t).median * 1000
            result.numbers[f"render_ratio_{n}"] = ratio.median
            result.numbers[f"scrape_bytes_{n}"] = len(text)
            result.numbers[f"series_{n}"] = series
        finally:
            close()
    result.tables.append(table)
    result.notes += [
        "Ours = ComfyUICollector + the GPU collector (NVML read at scrape time through the fake) in one "
        "registry, rendered by prometheus_client.generate_latest, as /metrics does. Process metrics "
        "are left out on both sides.",
        "Bare = the same samples as stock Gauge/Counter/Histogram objects in a fresh registry "
        "(created-series off, as our families have none); 'same samples' checks both expositions parse "
        "to identical samples.",
        "/metrics gzips with compresslevel=1 when Prometheus asks (it does): the gzip column is "
        "render + gzip.",
        f"Failures are spread over {prof.node_types} node types and 45 exception types; the state admits 64 "
        "node types and 32 exception types per instance and counts the rest as `other`, which bounds "
        "comfyui_node_failures_total.",
    ]
    ok = finite(worst_ratio) and worst_ratio <= 1.5
    result.targets.append(
        Target(
            "render ≤ 1.5× bare prometheus_client",
            "≤ 1.5×",
            f"worst {fmt_ratio(worst_ratio)} (at {', '.join(str(n) for n in prof.instances)} instances)",
            ok,
        )
    )
    big = max(prof.instances)
    result.headlines.append(
        f"/metrics for {big} instances + {prof.gpus} GPUs renders in "
        f"{result.numbers.get(f'render_ms_{big}', float('nan')):.1f} ms "
        f"({fmt_ratio(result.numbers.get(f'render_ratio_{big}', float('nan')))} bare prometheus_client), "
        f"{fmt_bytes(result.numbers.get(f'scrape_bytes_{big}', float('nan')))} per scrape"
    )
    return result
