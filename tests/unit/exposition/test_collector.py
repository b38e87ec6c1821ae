"""Rendering: the exposition parses, follows the contract table in the README and passes promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from comfyui_exporter.config.settings import AlertmanagerConfig
from comfyui_exporter.exposition.collector import ComfyUICollector, Instance
from comfyui_exporter.model.events import (
    DeviceStats,
    ErrorType,
    FailureDetail,
    NodeExecuted,
    Outcome,
    PluginState,
    ProgressSeen,
    PromptFinished,
    PromptRejected,
    QueueJob,
    QueueSnapshot,
    RequestObserved,
    SystemStats,
    VramGuardTripped,
)
from comfyui_exporter.model.state import InstanceState
from comfyui_exporter.notify.metrics import AlertSenderCollector
from comfyui_exporter.notify.sender import AlertSender
from tests.support.binaries import require_binary

README = Path(__file__).resolve().parents[3] / "README.md"


def populated_registry(now: float = 1000.0) -> CollectorRegistry:
    instance = Instance(InstanceState("gpu0"))
    for event in (
        SystemStats(
            1.0,
            "0.8.0",
            "3.11.7",
            "2.13.0",
            ("main.py",),
            (DeviceStats("cuda:0 NVIDIA H200 : cudaMallocAsync", "cuda", 0, 100, 40, 30, 10),),
        ),
        RequestObserved(1.0, "history", 0.002, True),
        QueueSnapshot(990.0, running=(QueueJob("r", 980.0),), pending=(QueueJob("p", 970.0),)),
        ProgressSeen(995.0, "r"),
        PromptFinished(
            999.0,
            "f",
            Outcome.ERROR,
            990.0,
            999.0,
            989.0,
            1,
            FailureDetail("4", "KSampler", "torch.OutOfMemoryError", "CUDA out of memory", ErrorType.OOM),
        ),
        PromptFinished(999.0, "s", Outcome.SUCCESS, 990.0, 995.0, 989.0, 2),
        PluginState(999.0, True),
        PromptRejected(
            999.0, None, "value_not_in_list", "4", "CheckpointLoaderSimple", "ckpt_name", "x not in []"
        ),
        NodeExecuted(999.0, "KSampler", 3.5),
        VramGuardTripped(999.0, "p", "7", "fail", "failed", 100, 200, ""),
    ):
        instance.apply(event)
    registry = CollectorRegistry()
    registry.register(ComfyUICollector(lambda: [instance], clock=lambda: now))
    # The event path's series (with --alertmanager.url): a sender that is never started.
    registry.register(AlertSenderCollector(AlertSender(AlertmanagerConfig(urls=("http://127.0.0.1:9093",)))))
    return registry


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_values_render_from_state() -> None:
    got = samples(populated_registry())
    assert got[("comfyui_prompt_failures_total", (("comfyui", "gpu0"), ("error_type", "oom")))] == 1
    assert got[("comfyui_prompt_failures_total", (("comfyui", "gpu0"), ("error_type", "cuda_error")))] == 0
    assert got[("comfyui_running_prompt_age_seconds", (("comfyui", "gpu0"),))] == 10.0
    assert got[("comfyui_running_prompt_progress_age_seconds", (("comfyui", "gpu0"),))] == 5.0
    assert got[("comfyui_queue_oldest_pending_age_seconds", (("comfyui", "gpu0"),))] == 30.0
    assert got[("comfyui_prompts_finished_total", (("comfyui", "gpu0"),))] == 2
    assert got[("comfyui_prompt_cached_nodes_total", (("comfyui", "gpu0"),))] == 3
    device = (("comfyui", "gpu0"), ("device", "cuda:0 NVIDIA H200 : cudaMallocAsync"))
    assert got[("comfyui_device_vram_free_bytes", device)] == 40
    assert got[("comfyui_up", (("comfyui", "gpu0"),))] == 1
    key = (
        "comfyui_prompt_execution_seconds_bucket",
        (("comfyui", "gpu0"), ("le", "10.0"), ("outcome", "error")),
    )
    assert got[key] == 1
    rejected = (("comfyui", "gpu0"), ("reason", "value_not_in_list"))
    assert got[("comfyui_prompt_rejections_total", rejected)] == 1
    assert got[("comfyui_prompt_rejections_total", (("comfyui", "gpu0"), ("reason", "other")))] == 0
    assert got[("comfyui_vram_guard_trips_total", (("action", "fail"), ("comfyui", "gpu0")))] == 1
    assert (
        got[("comfyui_node_execution_seconds_count", (("comfyui", "gpu0"), ("node_type", "KSampler")))] == 1
    )


def test_plugin_series_absent_until_the_plugin_is_seen() -> None:
    instance = Instance(InstanceState("x"))
    registry = CollectorRegistry()
    registry.register(ComfyUICollector(lambda: [instance], clock=lambda: 0.0))
    text = generate_latest(registry).decode()
    assert 'comfyui_plugin_connected{comfyui="x"} 0.0' in text
    assert "comfyui_prompt_rejections_total" not in text


def readme_contract() -> dict[str, tuple[str, set[str]]]:
    """name → (type, labels) from the README's metrics table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- metrics-table:start -->", 1)[1].split("<!-- metrics-table:end -->", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`comfyui_"):
            continue
        labels = {
            label.split("=")[0] for label in re.findall(r"[a-z_]+(?:=[^,]+)?", cells[2].replace("`", ""))
        }
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            out[name] = (cells[1].split()[0], labels - {"none"})
    return out


def exported_contract() -> dict[str, tuple[str, set[str]]]:
    text = generate_latest(populated_registry()).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("comfyui_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = set().union(*(set(s.labels) for s in family.samples)) - {"le"}
        out[name] = (family.type, labels)
    return out


def test_readme_metrics_table_equals_what_is_exported() -> None:
    documented = readme_contract()
    exported = exported_contract()
    # GPU metrics have their own table (checked in tests/gpu); this one is the core + plugin.
    assert documented == exported


def test_openmetrics_exposition_is_available() -> None:
    text = generate_openmetrics(populated_registry()).decode()
    assert text.endswith("# EOF\n")
    assert 'comfyui_prompt_failures_total{comfyui="gpu0",error_type="oom"} 1.0' in text


def test_promtool_check_metrics_finds_nothing(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(populated_registry()),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
