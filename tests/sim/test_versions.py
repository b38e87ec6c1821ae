"""``--comfyui-version``: what each profile answers differently (0.3.64 and 0.8.0 are also checked
against their recordings by the replay tests; 0.38 has no recording, so its answers are pinned
here, from reading its source: docs/comfyui-versions.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from comfyui_exporter.sim.testing import SimHandle, running_sim
from comfyui_exporter.sim.versions import PROFILES, canonical_uuid

GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {
        "class_type": "FaultInjection",
        "inputs": {"mode": "pass", "seconds": 0.0, "steps": 1, "salt": 3, "image": ["1", 0]},
    },
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "v"}},
}


@pytest.fixture(scope="module")
def v038() -> Iterator[SimHandle]:
    with running_sim(comfyui_version="0.38", device="cuda", gpus=4) as handle:
        yield handle


@pytest.fixture(scope="module")
def v0364() -> Iterator[SimHandle]:
    with running_sim(comfyui_version="0.3.64") as handle:
        yield handle


def test_version_strings_and_fields_per_profile(v038: SimHandle, v0364: SimHandle) -> None:
    new = v038.get("/system_stats")["system"]
    old = v0364.get("/system_stats")["system"]
    assert (old["comfyui_version"], old["os"]) == ("0.3.64", "posix")
    assert (new["comfyui_version"], new["os"]) == ("0.38.0", "linux")
    assert "comfy_package_versions" in new and "deploy_environment" in new
    assert "comfy_package_versions" not in old and "deploy_environment" not in old
    assert "extension" not in v0364.get("/features")
    assert v038.get("/features")["extension"] == {"manager": {"supports_v4": True}}


def test_038_lists_every_gpu_primary_first_and_only_it_is_busy(v038: SimHandle) -> None:
    devices = v038.get("/system_stats")["devices"]
    assert [(d["name"], d["index"]) for d in devices] == [
        (f"cuda:{i} NVIDIA H200 : cudaMallocAsync", i) for i in range(4)
    ]
    (pid,) = v038.enqueue("success", seconds=1.5, progress_steps=3)
    busy = None
    for _ in range(100):
        if v038.stats()["running"] == pid:
            busy = v038.get("/system_stats")["devices"]
            break
    assert busy is not None
    assert busy[0]["torch_vram_total"] > 0
    assert all(d["torch_vram_total"] == 0 for d in busy[1:])
    v038.wait_idle()


def test_older_versions_list_one_device_even_on_a_multi_gpu_host() -> None:
    with running_sim(comfyui_version="0.8.0", device="cuda", gpus=4) as sim:
        assert [d["name"] for d in sim.get("/system_stats")["devices"]] == [
            "cuda:0 NVIDIA H200 : cudaMallocAsync"
        ]


def test_0364_has_no_jobs_api_and_no_create_time_and_shows_sensitive_keys_in_queue(
    v0364: SimHandle,
) -> None:
    for path in ("/api/jobs", "/api/jobs?status=bogus", "/api/jobs/x"):
        assert v0364.request("GET", path) == (404, None)
    body = {"prompt": GRAPH, "extra_data": {"api_key_comfy_org": "k"}}
    pending = []
    (blocker,) = v0364.enqueue("success", seconds=1.0)
    status, out = v0364.request("POST", "/prompt", body)
    assert status == 200
    for _ in range(100):
        pending = v0364.get("/queue")["queue_pending"]
        if pending:
            break
    assert pending[0][3] == {"api_key_comfy_org": "k"}  # no create_time, key not hidden
    v0364.wait_idle()
    item = v0364.get(f"/history/{out['prompt_id']}")[out["prompt_id"]]
    assert item["prompt"][3] == {}  # gone from history
    assert "create_time" not in v0364.get(f"/history/{blocker}")[blocker]["prompt"][3]


def test_038_prompt_id_must_be_a_canonical_uuid(v038: SimHandle) -> None:
    mine = str(uuid.uuid4())
    for bad in ("mine-1", mine.upper(), mine.replace("-", ""), 42):
        before = v038.get("/prompt")
        status, out = v038.request("POST", "/prompt", {"prompt": GRAPH, "prompt_id": bad})
        assert status == 400 and out["error"]["type"] == "invalid_prompt_id", out
        assert out["node_errors"] == {}
        assert v038.get("/prompt") == before  # nothing queued
    status, out = v038.request("POST", "/prompt", {"prompt": GRAPH, "prompt_id": mine})
    assert (status, out["prompt_id"]) == (200, mine)
    status, out = v038.request("POST", "/prompt", {"prompt": GRAPH, "prompt_id": None})
    assert status == 200 and canonical_uuid(out["prompt_id"])
    v038.wait_idle()
    # The rejected POSTs still consumed numbers (the counter moves before the check).
    assert v038.get(f"/history/{mine}")[mine]["prompt"][0] >= 4


def test_080_keeps_a_client_prompt_id_as_given() -> None:
    with running_sim() as sim:
        status, out = sim.request("POST", "/prompt", {"prompt": GRAPH, "prompt_id": "mine-1"})
        assert (status, out["prompt_id"]) == (200, "mine-1")
        status, out = sim.request("POST", "/prompt", {"prompt": {"1": {"class_type": "Nope"}}})
        assert (status, out["error"]["type"]) == (400, "invalid_prompt")


def test_038_unknown_nodes_are_missing_node_type(v038: SimHandle) -> None:
    status, out = v038.request("POST", "/prompt", {"prompt": {"7": {"class_type": "Nope", "inputs": {}}}})
    assert status == 400
    assert out["error"] == {
        "type": "missing_node_type",
        "message": "Node 'Nope' not found. The custom node may not be installed.",
        "details": "Node ID '#7'",
        "extra_info": {"node_id": "7", "class_type": "Nope", "node_title": "Nope"},
    }
    status, out = v038.request("POST", "/prompt", {"prompt": {"7": {"inputs": {}}}})
    assert (status, out["error"]["type"], out["error"]["extra_info"]["class_type"]) == (
        400,
        "missing_node_type",
        None,
    )


def test_038_jobs_have_cancelled_and_previewable_counts(v038: SimHandle) -> None:
    status, out = v038.request("GET", "/api/jobs?status=bogus")
    assert status == 400
    assert out["error"].endswith("Valid values: pending, in_progress, completed, failed, cancelled")
    (done,) = v038.enqueue("success")
    (stopped,) = v038.enqueue("interrupt", seconds=0.1, progress_steps=1)
    v038.wait_idle()
    jobs = {j["id"]: j for j in v038.get("/api/jobs")["jobs"]}
    assert jobs[stopped]["status"] == "cancelled" and "execution_error" not in jobs[stopped]
    assert jobs[done]["status"] == "completed"
    keys = list(jobs[done])
    assert keys[keys.index("outputs_count") + 1] == "previewable_outputs_count"
    assert jobs[done]["previewable_outputs_count"] == jobs[done]["outputs_count"] == 1
    v038.enqueue("success", seconds=1.0)  # keeps the next one pending
    (queued,) = v038.enqueue("success")
    detail = v038.get(f"/api/jobs/{queued}")
    assert detail["status"] == "pending" and detail["previewable_outputs_count"] == 0
    assert detail["workflow"]["prompt"]["2"]["class_type"] == "FaultInjection"
    v038.wait_idle()


def test_038_cancel_endpoints(v038: SimHandle) -> None:
    unknown = str(uuid.uuid4())
    assert v038.request("POST", f"/api/jobs/{unknown}/cancel") == (200, {"cancelled": False})
    (done,) = v038.enqueue("success")
    v038.wait_idle()
    assert v038.request("POST", f"/api/jobs/{done}/cancel") == (200, {"cancelled": False})
    assert v038.request("POST", "/api/jobs/cancel", {"job_ids": "x"}) == (
        400,
        {"error": "job_ids must be a list"},
    )
    status, out = v038.request("POST", "/api/jobs/cancel", {"job_ids": [done, "nope", 3]})
    assert (status, out) == (400, {"error": "job_ids contains invalid id(s)", "invalid_ids": ["nope", "3"]})
    assert v038.request("POST", "/api/jobs/cancel", {"job_ids": [done, unknown]}) == (
        200,
        {"cancelled": False},
    )
    (runs,) = v038.enqueue("interrupt", seconds=0, progress_steps=0)
    (waits,) = v038.enqueue("success")
    for _ in range(200):
        if v038.stats()["running"] == runs:
            break
    assert v038.request("POST", "/api/jobs/cancel", {"job_ids": [waits, runs]}) == (
        200,
        {"cancelled": True},
    )
    v038.wait_idle()
    assert v038.get(f"/history/{waits}") == {}  # a dequeued pending job leaves no trace
    assert v038.get(f"/api/jobs/{runs}")["status"] == "cancelled"


def test_080_has_no_cancel_endpoints_and_no_cancelled_status() -> None:
    with running_sim() as sim:
        assert sim.request("POST", f"/api/jobs/{uuid.uuid4()}/cancel")[0] in (404, 405)
        status, out = sim.request("GET", "/api/jobs?status=cancelled")
        assert status == 400 and "cancelled" in out["error"]


def test_unknown_version_is_refused_at_start() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "comfyui_exporter.sim", "--comfyui-version", "0.9.9"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--comfyui-version" in proc.stderr and "0.38" in proc.stderr


def test_profiles_cover_the_documented_versions() -> None:
    assert sorted(PROFILES) == ["0.3.64", "0.38", "0.8.0"]
    assert [PROFILES[v].jobs_api for v in ("0.3.64", "0.8.0", "0.38")] == [False, True, True]


def _post_with_usage_source(sim: SimHandle) -> str:
    req = urllib.request.Request(
        sim.url + "/prompt",
        data=json.dumps({"prompt": GRAPH}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Comfy-Usage-Source": "api-test"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["prompt_id"]


def test_038_records_the_usage_source_header(v038: SimHandle, v0364: SimHandle) -> None:
    new, old = _post_with_usage_source(v038), _post_with_usage_source(v0364)
    v038.wait_idle()
    v0364.wait_idle()
    assert v038.get(f"/history/{new}")[new]["prompt"][3]["comfy_usage_source"] == "api-test"
    assert "comfy_usage_source" not in v0364.get(f"/history/{old}")[old]["prompt"][3]
