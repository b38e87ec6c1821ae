"""The exporter against the simulator over real sockets: outcomes, queue ages, faults.

Ground truth is the simulator's own ledger of what reached history (``/_sim/outcomes``); the
exporter's counters must equal it: every failure counted once, none lost, none twice.
"""

from __future__ import annotations

import time

import pytest

from comfyui_exporter.sim.testing import running_sim
from tests.support.stack import running_exporter, wait_until

ERROR_TYPES = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")
FAST = ("--poll-interval", "1", "--system-stats-interval", "1")


def counters(exporter, name: str) -> dict[str, float]:
    samples = exporter.samples()
    return (
        {
            dict(labels)["error_type"]: value
            for (sample, labels), value in samples.items()
            if sample == "comfyui_prompt_failures_total"
        }
        if name == "failures"
        else {}
    )


def assert_matches_truth(exporter, sim, instance: str = "sim", timeout: float = 10.0) -> None:
    sim.wait_idle(timeout)  # the truth must be final before comparing, or a partial match passes

    def matches() -> bool:
        truth = sim.outcomes()
        got = counters(exporter, "failures")
        return (
            exporter.value("comfyui_prompts_finished_total", comfyui=instance) == truth["finished"]
            and exporter.value("comfyui_prompts_interrupted_total", comfyui=instance) == truth["interrupted"]
            and all(got.get(et, 0) == truth["failures"].get(et, 0) for et in ERROR_TYPES)
        )

    wait_until(matches, timeout, what=f"counters == truth {sim.outcomes()}")


@pytest.fixture
def sim():
    with running_sim() as handle:
        yield handle


def test_every_outcome_counted_once_with_and_without_client_id(sim) -> None:
    with running_exporter("--comfyui-url", f"sim={sim.url}", *FAST) as exporter:
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        before = exporter.samples()
        assert all(
            before[("comfyui_prompt_failures_total", frozenset({("comfyui", "sim"), ("error_type", et)}))]
            == 0
            for et in ERROR_TYPES
        )
        for client_id in (None, "someone-else-1234"):
            for outcome in (
                "success",
                "oom",
                "cuda_error",
                "file_not_found",
                "model_load_error",
                "runtime_error",
                "value_error",
                "blocked",
            ):
                sim.enqueue(outcome=outcome, client_id=client_id)
            sim.enqueue(outcome="interrupt", client_id=client_id, seconds=0.3)
        assert_matches_truth(exporter, sim)
        truth = sim.outcomes()
        assert truth["failures"]["oom"] == 2 and truth["interrupted"] == 2
        failures = exporter.failures()
        assert len(failures) == sum(truth["failures"].values())
        assert {f["error_type"] for f in failures} == set(ERROR_TYPES)
        assert all(len(f["message"]) <= 500 and f["prompt_id"] for f in failures)
        assert exporter.failures(error_type="oom")[0]["error_type"] == "oom"
        # Counted once: nothing moves after more polls.
        time.sleep(1.5)
        assert_matches_truth(exporter, sim, timeout=1)


def test_running_age_grows_and_progress_age_only_with_progress(sim) -> None:
    with running_exporter("--comfyui-url", f"sim={sim.url}", *FAST) as exporter:
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        # Submitted with another client's id: ComfyUI sends its progress to that client only.
        sim.enqueue(outcome="success", seconds=4.0, progress_steps=0, client_id="someone-else-1234")
        first = wait_until(lambda: exporter.value("comfyui_running_prompt_age_seconds", comfyui="sim"), 5)
        time.sleep(1.2)
        later = exporter.value("comfyui_running_prompt_age_seconds", comfyui="sim")
        assert later > first + 1.0
        assert exporter.value("comfyui_running_prompt_progress_age_seconds", comfyui="sim") is None
        wait_until(lambda: exporter.value("comfyui_running_prompt_age_seconds", comfyui="sim") == 0, 8)
        sim.enqueue(outcome="success", seconds=3.0, progress_steps=30)  # no client_id: progress is broadcast
        wait_until(
            lambda: exporter.value("comfyui_running_prompt_progress_age_seconds", comfyui="sim") is not None,
            5,
        )
        assert exporter.value("comfyui_running_prompt_progress_age_seconds", comfyui="sim") < 1.0


def test_queue_shows_pending_and_oldest_age(sim) -> None:
    with running_exporter("--comfyui-url", f"sim={sim.url}", *FAST) as exporter:
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        sim.enqueue(outcome="success", seconds=3.0, count=4)
        wait_until(lambda: exporter.value("comfyui_queue_prompts", comfyui="sim", state="pending") == 3, 5)
        assert exporter.value("comfyui_queue_prompts", comfyui="sim", state="running") == 1
        time.sleep(1.0)
        assert exporter.value("comfyui_queue_oldest_pending_age_seconds", comfyui="sim") >= 1.0
        sim.request("POST", "/interrupt")
        sim.request("POST", "/queue", {"clear": True})
        wait_until(lambda: exporter.value("comfyui_queue_prompts", comfyui="sim", state="pending") == 0, 5)
        assert exporter.value("comfyui_queue_oldest_pending_age_seconds", comfyui="sim") == 0


def test_server_without_jobs_api_uses_queue_endpoint() -> None:
    with (
        running_sim(no_jobs_api=True) as sim,
        running_exporter("--comfyui-url", f"old={sim.url}", *FAST) as exporter,
    ):
        wait_until(lambda: exporter.value("comfyui_up", comfyui="old") == 1, what="up")
        sim.enqueue(outcome="success", seconds=2.0, count=2)
        wait_until(lambda: exporter.value("comfyui_queue_prompts", comfyui="old", state="pending") == 1, 5)
        sim.enqueue(outcome="oom")
        assert_matches_truth(exporter, sim, instance="old")
        assert exporter.value("comfyui_exporter_requests_total", comfyui="old", endpoint="queue") > 0


def test_exporter_restart_with_full_history_counts_nothing_old(sim) -> None:
    for outcome in ("oom", "cuda_error", "success"):
        sim.enqueue(outcome=outcome, count=3)
    wait_until(lambda: sim.outcomes()["finished"] == 9, 10)
    with running_exporter("--comfyui-url", f"sim={sim.url}", *FAST) as exporter:
        wait_until(lambda: exporter.value("comfyui_up", comfyui="sim") == 1, what="up")
        time.sleep(1.5)
        assert exporter.value("comfyui_prompts_finished_total", comfyui="sim") == 0
        assert exporter.value("comfyui_prompt_failures_total", comfyui="sim", error_type="oom") == 0
        sim.enqueue(outcome="oom")
        wait_until(
            lambda: exporter.value("comfyui_prompt_failures_total", comfyui="sim", error_type="oom") == 1, 5
        )
        assert exporter.value("comfyui_prompts_finished_total", comfyui="sim") == 1


def test_unreachable_at_start_then_up() -> None:
    from tests.support.stack import free_port

    port = free_port()
    with running_exporter("--comfyui-url", f"late=http://127.0.0.1:{port}", *FAST) as exporter:
        assert exporter.value("comfyui_up", comfyui="late") == 0
        with running_sim(port=port) as sim:
            wait_until(lambda: exporter.value("comfyui_up", comfyui="late") == 1, 10, what="up after start")
            sim.enqueue(outcome="model_load_error")
            assert_matches_truth(exporter, sim, instance="late")
        wait_until(lambda: exporter.value("comfyui_up", comfyui="late") == 0, 10, what="down after stop")
