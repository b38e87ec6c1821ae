"""The capture script: its output is what FakeNvml reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pynvml
import pytest

from comfyui_exporter.gpu.capture import record_sample
from comfyui_exporter.gpu.fake import FakeNvml, load_capture

from .support import REPO, exposition, load, make_collector, parse, value


def expand_handle_errors(sample: dict) -> dict:  # type: ignore[type-arg]
    """A fixture may say {"handle": error}; a capture records that error for every field."""
    out = json.loads(json.dumps(sample))
    for i, device in enumerate(out["devices"]):
        if "handle" in device:
            fields = (
                "uuid",
                "name",
                "pci_bus_id",
                "memory_info",
                "utilization_rates",
                "temperature",
                "power_usage",
                "enforced_power_limit",
                "clocks_event_reasons",
                "mig_mode",
            )
            out["devices"][i] = dict.fromkeys(fields, device["handle"])
    return out


@pytest.mark.parametrize("name", ["gpu_lost_midrun", "mig_and_unsupported", "xid_events", "consumer_rtx4090"])
def test_record_sample_of_the_fake_reproduces_every_sample(name: str) -> None:
    capture = load(name)
    nvml = FakeNvml(capture)
    nvml.init()
    for k, want in enumerate(capture["samples"]):
        nvml.sample_index = k
        got = record_sample(nvml, want["t"])
        assert got == expand_handle_errors(want), k


def test_the_cli_prints_a_capture_the_fake_can_replay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": str(REPO / "exporter")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "comfyui_exporter.gpu.capture",
            "--samples",
            "2",
            "--interval",
            "0.1",
            "--note",
            "test",
        ],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    path = tmp_path / "capture.json"
    path.write_bytes(result.stdout)
    data = load_capture(path)
    assert data["provenance"]["kind"] == "captured" and data["provenance"]["note"] == "test"
    nvml = FakeNvml(data)
    if data["init"]:  # this build host: no libnvidia-ml
        assert result.returncode == 1 and b"could not be initialised" in result.stderr
        assert data["init"] == {"error": "LIBRARY_NOT_FOUND"}
        with pytest.raises(pynvml.NVMLError_LibraryNotFound):
            nvml.init()
        assert value(parse(exposition(make_collector(nvml))), "comfyui_exporter_nvml_up") == 0
    else:  # a GPU host: the replay exports every GPU
        assert result.returncode == 0 and len(data["samples"]) == 2
        samples = parse(exposition(make_collector(nvml)))
        assert value(samples, "comfyui_exporter_gpus_present") == data["samples"][0]["device_count"]


def test_the_cli_help_names_the_module() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "exporter")}
    result = subprocess.run(
        [sys.executable, "-m", "comfyui_exporter.gpu.capture", "--help"],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert b"python -m comfyui_exporter.gpu.capture" in result.stdout
