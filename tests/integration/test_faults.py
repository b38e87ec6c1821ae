"""Faults: ComfyUI killed and restarted, websocket dropped mid-prompt, slow, malformed and huge
responses, history wiped. After each, no failure is lost and none is counted twice."""

from __future__ import annotations

import time

import pytest

from comfyui_exporter.sim.testing import running_sim
from tests.integration.test_exporter_sim import FAST, assert_matches_truth
from tests.support.stack import running_exporter, wait_until


@pytest.fixture
def stack():
    with (
        running_sim() as sim,
        running_exporter("--comfyui-url", f"sim={sim.url}", *FAST, "--request-timeout", "1") as exporter,
    ):
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        yield sim, exporter


def test_comfyui_killed_and_restarted(stack) -> None:
    sim, exporter = stack
    sim.enqueue(outcome="oom", count=2)
    assert_matches_truth(exporter, sim)
    sim.kill()
    wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 0, 10, what="down")
    sim.start()  # a new process: its ledger (the truth) starts from zero, like its history
    sim.enqueue(outcome="cuda_error")  # may finish before the exporter reconnects: must still count
    sim.wait_idle()
    wait_until(
        lambda: exporter.value("comfyui_restarts_total", comfyui="sim") == 1, 40, what="restart counted"
    )
    wait_until(
        lambda: exporter.value("comfyui_prompt_failures_total", comfyui="sim", error_type="cuda_error") == 1,
        15,
    )
    time.sleep(1.5)
    assert exporter.value("comfyui_prompt_failures_total", comfyui="sim", error_type="oom") == 2
    assert exporter.value("comfyui_prompts_finished_total", comfyui="sim") == 3


def test_simulated_restart_through_control_api(stack) -> None:
    sim, exporter = stack
    sim.enqueue(outcome="success", count=2)
    assert_matches_truth(exporter, sim)
    sim.restart(down_seconds=1.0)
    sim.enqueue(outcome="value_error")
    wait_until(
        lambda: exporter.value("comfyui_restarts_total", comfyui="sim") == 1, 40, what="restart counted"
    )
    assert_matches_truth(exporter, sim, timeout=15)


def test_websocket_dropped_mid_prompt(stack) -> None:
    sim, exporter = stack
    sim.enqueue(outcome="oom", seconds=1.5)
    time.sleep(0.3)
    sim.faults(drop_websockets=True)
    assert_matches_truth(exporter, sim, timeout=15)
    wait_until(lambda: exporter.value("comfyui_exporter_websocket_reconnects_total", comfyui="sim") >= 1, 40)


def test_slow_responses_time_out_and_nothing_is_lost(stack) -> None:
    sim, exporter = stack
    sim.faults(delay_ms={"/history": 2500})
    sim.enqueue(outcome="oom")
    wait_until(
        lambda: (
            exporter.value("comfyui_exporter_request_failures_total", comfyui="sim", endpoint="history") >= 1
        ),
        10,
    )
    assert exporter.value("comfyui_prompt_failures_total", comfyui="sim", error_type="oom") == 0
    sim.clear_faults()
    assert_matches_truth(exporter, sim, timeout=10)


def test_malformed_history_is_counted_and_skipped_then_recovered(stack) -> None:
    sim, exporter = stack
    sim.faults(malformed={"/history": True})
    sim.enqueue(outcome="cuda_error")
    wait_until(
        lambda: (
            exporter.value("comfyui_exporter_malformed_messages_total", comfyui="sim", source="history") >= 1
        ),
        10,
    )
    sim.clear_faults()
    assert_matches_truth(exporter, sim, timeout=10)


def test_huge_payload_is_refused_without_losing_state() -> None:
    with (
        running_sim() as sim,
        running_exporter(
            "--comfyui-url", f"sim={sim.url}", *FAST, "--max-response-bytes", str(5 * 1024 * 1024)
        ) as exporter,
    ):
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        sim.faults(oversize_bytes={"/history": 50 * 1024 * 1024})
        sim.enqueue(outcome="oom")
        wait_until(
            lambda: (
                exporter.value("comfyui_exporter_malformed_messages_total", comfyui="sim", source="history")
                >= 1
            ),
            15,
        )
        sim.clear_faults()
        assert_matches_truth(exporter, sim, timeout=10)


def test_history_wiped(stack) -> None:
    sim, exporter = stack
    sim.enqueue(outcome="oom", count=2)
    assert_matches_truth(exporter, sim)
    sim.request("POST", "/history", {"clear": True})
    time.sleep(1.5)
    sim.enqueue(outcome="oom")
    assert_matches_truth(exporter, sim)
    assert exporter.value("comfyui_restarts_total", comfyui="sim") == 0


def test_sigterm_stops_within_two_seconds() -> None:
    with running_sim() as sim:
        from tests.support.stack import ExporterProcess

        exporter = ExporterProcess(["--no-gpu", "--comfyui-url", f"sim={sim.url}"]).start()
        wait_until(lambda: exporter.value("comfyui_exporter_websocket_connected", comfyui="sim") == 1, 10)
        assert exporter.stop() < 2.0
