"""The exporter against the simulator's other version profiles: 0.3.64 (no /api/jobs) and 0.38.

Ground truth is again the simulator's ledger (``/_sim/outcomes``). On 0.3.64 the exporter must
fall back to ``/queue`` and keep every count right; on 0.38 a cancel (``POST /api/jobs/{id}/cancel``)
must count as an interruption, never as a failure, and a multi-GPU ``/system_stats`` must give one
series per device.
"""

from __future__ import annotations

import time

from comfyui_exporter.sim.testing import running_sim
from tests.integration.test_exporter_sim import ERROR_TYPES, FAST, assert_matches_truth
from tests.support.stack import running_exporter, wait_until

OUTCOMES = ("success", "oom", "cuda_error", "file_not_found", "model_load_error", "runtime_error", "blocked")
SECRET = "dummy-not-a-real-key-7f3a"


def test_on_0364_every_outcome_counts_through_the_queue_fallback() -> None:
    with (
        running_sim(comfyui_version="0.3.64") as sim,
        running_exporter("--comfyui-url", f"old={sim.url}", *FAST) as exporter,
    ):
        wait_until(lambda: exporter.value("comfyui_up", comfyui="old") == 1, what="up")
        assert sim.request("GET", "/api/jobs")[0] == 404
        for client_id in (None, "someone-else-1234"):
            for outcome in OUTCOMES:
                sim.enqueue(outcome=outcome, client_id=client_id)
            sim.enqueue(outcome="interrupt", client_id=client_id, seconds=0.3)
        # A frontend-style prompt: 0.3.64 shows api_key_comfy_org in /queue while it waits or runs.
        body = {
            "prompt": _slow_graph(2.0),
            "client_id": "frontend-1",
            "extra_data": {"api_key_comfy_org": SECRET},
        }
        status, answer = sim.request("POST", "/prompt", body)
        assert status == 200, answer
        sim.enqueue(outcome="success", seconds=1.0)
        wait_until(lambda: exporter.value("comfyui_queue_prompts", comfyui="old", state="pending") == 1, 8)
        running = sim.get("/queue")["queue_running"]
        assert any(item[3].get("api_key_comfy_org") == SECRET for item in running)
        assert_matches_truth(exporter, sim, instance="old", timeout=15)
        truth = sim.outcomes()
        assert truth["interrupted"] == 2 and truth["failures"]["oom"] == 2
        assert exporter.value("comfyui_exporter_requests_total", comfyui="old", endpoint="queue") > 0
        # No create_time on 0.3.64: run times are measured, queue waits cannot be.
        assert exporter.value("comfyui_prompt_queue_wait_seconds_count", comfyui="old") == 0
        errors = sum(truth["failures"].values())
        assert errors == 10
        timed = exporter.value("comfyui_prompt_execution_seconds_count", comfyui="old", outcome="error")
        assert timed == errors
        info = [
            dict(labels)
            for (name, labels), _ in exporter.samples().items()
            if name == "comfyui_info" and dict(labels)["comfyui"] == "old"
        ]
        assert [i["version"] for i in info] == ["0.3.64"]
        assert SECRET not in exporter.metrics_text()
        assert SECRET not in str(exporter.failures())
        assert {f["error_type"] for f in exporter.failures(comfyui="old")} == set(ERROR_TYPES)


def _slow_graph(seconds: float) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "FaultInjection",
            "inputs": {"mode": "sleep", "seconds": seconds, "steps": 2, "salt": 7, "image": ["1", 0]},
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def test_on_038_a_cancel_is_an_interruption_and_every_gpu_has_series() -> None:
    with (
        running_sim(comfyui_version="0.38", device="cuda", gpus=4) as sim,
        running_exporter("--comfyui-url", f"new={sim.url}", *FAST) as exporter,
    ):
        wait_until(lambda: exporter.value("comfyui_up", comfyui="new") == 1, what="up")
        wait_until(lambda: exporter.value("comfyui_devices", comfyui="new") == 4, what="4 devices")
        devices = {
            dict(labels)["device"]
            for (name, labels), _ in exporter.samples().items()
            if name == "comfyui_device_vram_total_bytes" and dict(labels)["comfyui"] == "new"
        }
        assert devices == {f"cuda:{i} NVIDIA H200 : cudaMallocAsync" for i in range(4)}

        # A running prompt cancelled through the jobs API, and a pending one (dequeued: no history).
        running = sim.enqueue(outcome="interrupt", seconds=0, progress_steps=0)[0]
        pending = sim.enqueue(outcome="success", seconds=0.5)[0]
        wait_until(lambda: sim.stats()["running"] == running, 5, what="first prompt running")
        assert sim.request("POST", f"/api/jobs/{pending}/cancel") == (200, {"cancelled": True})
        assert sim.request("POST", "/api/jobs/cancel", {"job_ids": [running]}) == (200, {"cancelled": True})
        sim.wait_idle(10)
        jobs = {j["id"]: j["status"] for j in sim.get("/api/jobs")["jobs"]}
        assert jobs == {running: "cancelled"}
        sim.enqueue(outcome="oom")
        assert_matches_truth(exporter, sim, instance="new")
        assert exporter.value("comfyui_prompts_interrupted_total", comfyui="new") == 1
        assert exporter.value("comfyui_prompt_failures_total", comfyui="new", error_type="oom") == 1
        assert sum(
            value
            for (name, labels), value in exporter.samples().items()
            if name == "comfyui_prompt_failures_total" and dict(labels)["comfyui"] == "new"
        ) == 1
        # 0.38 rejects a client prompt_id that is not a canonical UUID; nothing is queued.
        status, body = sim.request("POST", "/prompt", {"prompt": _slow_graph(0), "prompt_id": "mine-1"})
        assert (status, body["error"]["type"]) == (400, "invalid_prompt_id")
        time.sleep(1.5)
        assert exporter.value("comfyui_prompts_finished_total", comfyui="new") == 2
