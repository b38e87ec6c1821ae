"""The ``/_sim`` control API of docs/development.md, through the ``running_sim`` test helper."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from comfyui_exporter.sim.testing import SimHandle, running_sim

EXPECTED = {
    # outcome -> (status_str, last history message, exception_type, outcomes bucket)
    "success": ("success", "execution_success", None, "success"),
    "oom": ("error", "execution_error", "torch.OutOfMemoryError", "oom"),
    "cuda_error": ("error", "execution_error", "torch.AcceleratorError", "cuda_error"),
    "file_not_found": ("error", "execution_error", "FileNotFoundError", "model_not_found"),
    "model_load_error": ("error", "execution_error", "safetensors_rust.SafetensorError", "model_load_error"),
    "runtime_error": ("error", "execution_error", "RuntimeError", "node_exception"),
    "value_error": ("error", "execution_error", "ValueError", "node_exception"),
    "interrupt": ("error", "execution_interrupted", None, "interrupted"),
    "blocked": ("success", "execution_success", None, "success"),
}


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_enqueue_every_outcome_reaches_history_and_ground_truth(sim: SimHandle) -> None:
    before = sim.outcomes()
    ids = {}
    for outcome in EXPECTED:
        seconds = 0.2 if outcome == "interrupt" else 0.0  # interrupt: run 0.2 s, then interrupt itself
        ids[outcome] = sim.enqueue(outcome, seconds=seconds, progress_steps=2 if seconds else 0)[0]
    sim.wait_idle()
    after = sim.outcomes()
    for outcome, (status_str, last, exc_type, _) in EXPECTED.items():
        item = sim.get(f"/history/{ids[outcome]}")[ids[outcome]]
        assert item["status"]["status_str"] == status_str, outcome
        name, data = item["status"]["messages"][-1]
        assert name == last, outcome
        assert data.get("exception_type") == exc_type
        if exc_type:
            assert data["exception_message"].endswith("\n") or exc_type == "torch.OutOfMemoryError"
            assert data["traceback"] and data["current_inputs"]["mode"]
    expected: dict[str, int] = {}
    for _, _, _, bucket in EXPECTED.values():
        expected[bucket] = expected.get(bucket, 0) + 1
    assert after["finished"] - before["finished"] == len(EXPECTED)
    assert after["success"] - before["success"] == expected.pop("success") == 2
    assert after["interrupted"] - before["interrupted"] == expected.pop("interrupted") == 1
    deltas = {k: after["failures"][k] - before["failures"][k] for k in after["failures"]}
    assert (
        deltas
        == expected
        == {"oom": 1, "cuda_error": 1, "model_not_found": 1, "model_load_error": 1, "node_exception": 2}
    )


def test_enqueue_count_client_id_and_workflow(sim: SimHandle) -> None:
    ids = sim.enqueue("success", client_id="someone", workflow_kb=8, count=3)
    assert len(ids) == 3 and len(set(ids)) == 3
    sim.wait_idle()
    item = sim.get(f"/history/{ids[0]}")[ids[0]]
    extra = item["prompt"][3]
    assert list(extra) == ["extra_pnginfo", "client_id", "create_time"]
    assert extra["client_id"] == "someone"
    assert 8 * 1024 <= len(json.dumps(extra["extra_pnginfo"]["workflow"])) < 10 * 1024
    job = sim.get(f"/api/jobs/{ids[0]}")
    assert job["workflow_id"] == extra["extra_pnginfo"]["workflow"]["id"]


def test_interrupt_outcome_waits_for_post_interrupt(sim: SimHandle) -> None:
    (pid,) = sim.enqueue("interrupt")
    time.sleep(0.3)
    assert sim.stats()["running"] == pid  # still running: seconds=0 means "until interrupted"
    sim.request("POST", "/interrupt", {"prompt_id": pid})
    sim.wait_idle()
    assert sim.get(f"/history/{pid}")[pid]["status"]["messages"][-1][0] == "execution_interrupted"


def test_stuck_prompt_sends_no_progress_and_blocks_the_queue(sim: SimHandle) -> None:
    (stuck,) = sim.enqueue("success", seconds=0.6, progress_steps=0)
    (after,) = sim.enqueue("success")
    time.sleep(0.2)
    stats = sim.stats()
    assert stats["running"] == stuck and stats["queue_pending"] == 1
    assert sim.get(f"/api/jobs/{after}")["status"] == "pending"
    sim.wait_idle()
    assert sim.get(f"/history/{after}")[after]["status"]["status_str"] == "success"


def test_stats_count_requests_bytes_and_time_per_route(sim: SimHandle) -> None:
    base = sim.stats()["requests"]
    sim.get("/history?max_items=1")
    sim.get("/api/history")
    sim.get("/api/jobs?limit=1")
    sim.get("/history/nope")
    stats = sim.stats()
    req = stats["requests"]
    assert req["/history"]["count"] - base.get("/history", {}).get("count", 0) == 2
    assert req["/api/jobs"]["count"] >= 1 and req["/history/{prompt_id}"]["bytes"] >= 2
    assert req["/history"]["server_seconds"] > 0
    assert not any(k.startswith("/_sim") for k in req)
    assert set(stats) == {"requests", "ws_clients", "history_len", "queue_pending", "running"}


def test_faults_delay_status_malformed_oversize_and_clear(sim: SimHandle) -> None:
    sim.faults(
        delay_ms={"/prompt": 300},
        status={"/queue": 503},
        malformed={"/history": True},
        oversize_bytes={"/api/jobs": 200_000},
    )
    started = time.monotonic()
    sim.get("/api/prompt")
    assert time.monotonic() - started >= 0.3
    assert sim.request("GET", "/api/queue")[0] == 503
    with urllib.request.urlopen(sim.url + "/history?max_items=1") as resp:
        raw = resp.read()
        assert resp.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(raw)
    with urllib.request.urlopen(sim.url + "/api/jobs?limit=1") as resp:
        raw = resp.read()
    assert len(raw) >= 200_000 and "jobs" in json.loads(raw)
    sim.clear_faults()
    assert sim.request("GET", "/queue")[0] == 200
    assert isinstance(sim.get("/history?max_items=1"), dict)


def test_restart_closes_listener_resets_state_keeps_outcomes() -> None:
    with running_sim() as sim:
        (pid,) = sim.enqueue("oom")
        sim.wait_idle()
        assert sim.get("/history")
        before = sim.outcomes()
        sim.restart(down_seconds=0.8, wait=False)
        time.sleep(0.4)
        assert not _port_open(sim.port)  # really down, not just erroring
        sim.wait_ready(5)
        assert sim.get("/history") == {}
        assert sim.get(f"/history/{pid}") == {}
        assert sim.outcomes() == before
        status, out = sim.request("POST", "/prompt", {"prompt": {}})
        assert status == 400 and out["error"]["type"] == "prompt_no_outputs"
        (new,) = sim.enqueue("success")
        sim.wait_idle()
        assert sim.get(f"/history/{new}")[new]["prompt"][0] == 1  # number restarted (0 used above)


def test_kill_and_start_on_same_port() -> None:
    with running_sim() as sim:
        sim.enqueue("success")
        sim.wait_idle()
        port = sim.port
        sim.kill()
        assert not _port_open(port)
        sim.start()
        assert sim.port == port and sim.get("/history") == {}


def test_no_jobs_api_and_jobs_cancelled_flags() -> None:
    with running_sim(no_jobs_api=True) as old:
        assert old.request("GET", "/api/jobs")[0] == 404
        assert old.request("GET", "/api/jobs/x")[0] == 404
        assert old.request("GET", "/history")[0] == 200
    with running_sim(jobs_cancelled=True) as new:
        (pid,) = new.enqueue("interrupt", seconds=0.1, progress_steps=1)
        new.wait_idle()
        job = new.get(f"/api/jobs/{pid}")
        assert job["status"] == "cancelled" and "execution_error" not in job
        assert [j["id"] for j in new.get("/api/jobs?status=cancelled")["jobs"]] == [pid]


def test_cuda_device_and_prefill() -> None:
    with running_sim(
        device="cuda", device_name="NVIDIA H200", vram_total=150000000000, prefill_history=10050
    ) as sim:
        dev = sim.get("/system_stats")["devices"]
        assert len(dev) == 1
        assert dev[0]["type"] == "cuda" and dev[0]["index"] == 0
        assert dev[0]["name"].startswith("cuda:0 NVIDIA H200 : ")
        assert dev[0]["vram_total"] == 150000000000
        assert len(sim.get("/history")) == 10001  # capped like ComfyUI (evict before insert)
        assert sim.get("/api/jobs?limit=1")["pagination"]["total"] == 10001
        status, out = sim.request("POST", "/prompt", {"prompt": {"1": {"class_type": "EmptyImage"}}})
        assert status == 400 and out["error"]["type"] == "prompt_no_outputs"
        (pid,) = sim.enqueue("success")
        sim.wait_idle()
        assert sim.get(f"/history/{pid}")[pid]["prompt"][0] == 10051  # invalid POST consumed 10050


def test_installed_checkpoint_lets_the_default_txt2img_graph_run() -> None:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": 5,
                "cfg": 8.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }
    with running_sim(checkpoint=["sd15.safetensors"]) as sim:
        status, out = sim.request("POST", "/prompt", {"prompt": graph})
        assert status == 200, out
        sim.wait_idle()
        item = sim.get(f"/history/{out['prompt_id']}")[out["prompt_id"]]
        assert item["status"]["status_str"] == "success"
        assert item["outputs"]["9"]["images"][0]["filename"] == "ComfyUI_00001_.png"
        graph["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
        status, out = sim.request("POST", "/prompt", {"prompt": graph})
        assert status == 400
        assert out["node_errors"]["4"]["errors"][0]["details"] == (
            "ckpt_name: 'missing.safetensors' not in ['sd15.safetensors']"
        )


def test_history_non_integer_params_are_plain_500(sim: SimHandle) -> None:
    for query in ("max_items=abc", "offset=1.5", "max_items=2&offset=x"):
        status, body = sim.request("GET", f"/api/history?{query}")
        assert status == 500 and body == "500 Internal Server Error\n\nServer got itself in trouble"
    status, body = sim.request("POST", "/prompt", {"prompt": {}, "api_key_comfy_org": "k", "front": True})
    assert status == 400 and "api_key_comfy_org" not in json.dumps(body)
