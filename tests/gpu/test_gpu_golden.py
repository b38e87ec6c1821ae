"""The exporter's exposition for every golden capture, compared byte for byte with golden/*.prom.

Regenerate after an intended change with COMFYUI_EXPORTER_UPDATE_GOLDEN=1 (the tests then skip, so a
regenerating run can never pass silently), and review the diff of golden/ like code.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess

import pytest

from comfyui_exporter.gpu.fake import FakeNvml

from .scenarios import SCENARIOS, Scenario
from .support import GOLDEN, UPDATE_ENV, drain_xid, exposition, load, make_collector


def render(scenario: Scenario) -> list[str]:
    """Exposition text of each step of a scenario."""
    nvml = FakeNvml(load(scenario.fixture))
    collector = make_collector(nvml, scenario.devices, expected_gpus=scenario.expected_gpus)
    out = []
    for step in range(scenario.steps):
        if step:
            nvml.advance()
        drain_xid(collector)
        out.append(exposition(collector))
    collector.close()
    return out


def golden_path(name: str, step: int):  # type: ignore[no-untyped-def]
    return GOLDEN / f"{name}.{step}.prom"


def drift(expected: str, actual: str, label: str) -> str:
    """Empty when equal, else a unified diff."""
    if expected == actual:
        return ""
    return "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), f"golden/{label}", "exporter now"
        )
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exposition_matches_golden(name: str) -> None:
    texts = render(SCENARIOS[name])
    if os.environ.get(UPDATE_ENV):
        GOLDEN.mkdir(exist_ok=True)
        for step, text in enumerate(texts):
            golden_path(name, step).write_text(text, encoding="utf-8")
        pytest.skip(f"{UPDATE_ENV} set: rewrote golden/{name}.*.prom; review the diff and rerun without it")
    for step, text in enumerate(texts):
        path = golden_path(name, step)
        assert path.exists(), f"{path} missing: run with {UPDATE_ENV}=1 once and review it"
        diff = drift(path.read_text(encoding="utf-8"), text, path.name)
        assert not diff, f"exposition drifted from {path.name}:\n{diff}"


def test_every_golden_file_belongs_to_a_scenario_step() -> None:
    wanted = {golden_path(n, s).name for n, sc in SCENARIOS.items() for s in range(sc.steps)}
    present = {p.name for p in GOLDEN.glob("*.prom")}
    assert present == wanted


def test_drift_is_detected() -> None:
    """The comparison fails on a one-value change, a dropped series and a reordered family."""
    scenario = SCENARIOS["server_8x_h100"]
    golden = golden_path("server_8x_h100", 0).read_text(encoding="utf-8")
    nvml = FakeNvml(load(scenario.fixture))
    nvml.set_device_field(3, "temperature", 52)  # was 51
    collector = make_collector(nvml, scenario.devices, expected_gpus=scenario.expected_gpus)
    changed = exposition(collector)
    diff = drift(golden, changed, "server_8x_h100.0.prom")
    assert (
        '-comfyui_gpu_temperature_celsius{gpu="3"' in diff
        and '+comfyui_gpu_temperature_celsius{gpu="3"' in diff
    )
    assert drift(golden, golden.replace('comfyui_gpu_up{gpu="7"', 'comfyui_gpu_up{gpu="8"'), "x")
    lines = golden.splitlines(True)
    assert drift(golden, "".join(lines[1:] + lines[:1]), "x")


def test_every_fixture_has_a_golden_scenario() -> None:
    from .support import FIXTURES

    assert {p.stem for p in FIXTURES.glob("*.json")} == {s.fixture for s in SCENARIOS.values()}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.prom")), ids=lambda p: p.name)
def test_golden_exposition_passes_promtool_check_metrics(path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=path.read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_metrics_table_in_docs_matches_what_is_exported() -> None:
    from .support import REPO

    doc = (REPO / "docs" / "gpu.md").read_text(encoding="utf-8").split("## Metrics")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `(comfyui_[a-z_]+)` \| (gauge|counter) \|", doc, re.M))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    readme = readme.split("<!-- gpu-metrics-table:start -->")[1].split("<!-- gpu-metrics-table:end -->")[0]
    assert set(re.findall(r"^\| `(comfyui_[a-z_]+)` \| (gauge|counter) \|", readme, re.M)) == documented
    exported = set()
    for path in GOLDEN.glob("*.prom"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ")
                exported.add((name, kind))
    assert documented == exported
