"""The exporter's event alerts (#13) in robot messages: exception type and message, prompt id(s),
the failures link from the alert itself; in Chinese and English, single and merged."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from relay_helpers import harness, payload

FAILURES = "http://exporter.studio.lan:9188/failures"
RUNBOOK = "https://github.com/comfyui-exporter/comfyui-exporter/blob/main/docs/runbooks.md"


def event(
    name: str,
    i: int = 1,
    *,
    error_type: str = "oom",
    severity: str = "critical",
    node_type: str = "KSampler",
    exception_type: str = "torch.OutOfMemoryError",
    exception_message: str = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
    "of 23.65 GiB of which 1.12 GiB is free.",
    prompt_ids: list[str] | None = None,
    node_id: str = "3",
) -> dict[str, Any]:
    """An alert as the exporter posts it to Alertmanager's /api/v2/alerts, as the webhook carries it."""
    ids = prompt_ids or [f"5f0c2a9e-8b1d-4c3e-9a7f-00000000000{i}"]
    labels = {"alertname": name, "comfyui": f"gpu-box-{i}", "severity": severity}
    if error_type:
        labels["error_type"] = error_type
    if node_type:
        labels["node_type"] = node_type
    ann = {
        "summary": f"Prompt failed on gpu-box-{i}: {error_type or 'restart'}",
        "description": f"A prompt on gpu-box-{i} failed in {node_type} (node {node_id}).",
        "exception_type": exception_type,
        "exception_message": exception_message,
        "prompt_id": ids[0],
        "node_id": node_id,
        "failures_url": f"{FAILURES}?comfyui=gpu-box-{i}",
        "runbook_url": f"{RUNBOOK}#comfyuipromptfailed",
    }
    if len(ids) > 1:
        ann["count"] = str(len(ids))
        ann["prompt_ids"] = ",".join(ids)
    return {
        "status": "firing",
        "labels": labels,
        "annotations": ann,
        "startsAt": "2026-12-03T10:00:01.250Z",
        "endsAt": "2026-12-03T10:05:01.250Z",
        "generatorURL": f"{FAILURES}?comfyui=gpu-box-{i}",
        "fingerprint": f"ev{i:014d}",
    }


BURST = [f"9a1b2c3d-0000-4000-8000-0000000000{n:02d}" for n in range(12, 0, -1)]  # newest first


def _bodies() -> list[dict[str, Any]]:
    oom = event("ComfyUIPromptFailed", 1)
    burst = event("ComfyUIPromptFailed", 2, prompt_ids=BURST)
    rejected = event(
        "ComfyUIPromptRejected",
        3,
        error_type="validation",
        severity="warning",
        node_type="CheckpointLoaderSimple",
        exception_type="prompt_outputs_failed_validation",
        exception_message="Value not in list: ckpt_name: 'sd_xl_base_1.0.safetensors' not in []",
    )
    lost = event(
        "ComfyUIPromptsLost",
        4,
        error_type="",
        severity="warning",
        node_type="",
        exception_type="",
        exception_message="",
        prompt_ids=["aa000000-0000-4000-8000-000000000002", "aa000000-0000-4000-8000-000000000001"],
        node_id="",
    )
    return [
        payload(a, group={k: a["labels"].get(k, "") for k in ("alertname", "comfyui", "error_type")})
        for a in (oom, burst, rejected, lost)
    ]


def _check(text: str, lang: str) -> None:
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" in text
    assert "KSampler" in text and "5f0c2a9e-8b1d-4c3e-9a7f-000000000001" in text
    assert text.count(f"({FAILURES}?comfyui=gpu-box-1)") == 1  # the alert's own link, once
    assert BURST[0] in text  # the newest prompt id of the folded burst
    assert re.search(r"(Prompts \(12, newest first\)|共 12 个|×12)", text)  # the burst's count
    assert "prompt_outputs_failed_validation: Value not in list" in text and "CheckpointLoaderSimple" in text
    assert "aa000000-0000-4000-8000-000000000002" in text  # the lost prompts
    assert ("失败记录" if lang == "zh" else "Failures") in text


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_event_alerts_single_and_merged(tmp_path: Path, lang: str) -> None:
    lookups: list[str] = []

    async def handler(request: web.Request) -> web.Response:  # would name another failure
        lookups.append(request.path)
        other = {
            "comfyui": "gpu-box-1",
            "error_type": "oom",
            "node_type": "VAEDecode",
            "exception_type": "RuntimeError",
            "message": "stale",
            "finished_at": 1e12,
        }
        return web.json_response([other])

    app = web.Application()
    app.add_routes([web.get("/failures", handler)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    lookup = f"http://127.0.0.1:{runner.addresses[0][1]}/failures"
    targets = {"d": {"type": "dingtalk", "language": lang}, "f": {"type": "feishu", "language": lang}}
    try:
        async with harness(tmp_path, targets, exporter_failures_url=lookup) as h:
            for body in _bodies():  # one by one: single messages
                assert (await h.post("d", body))[0] == 200
            single = "\n".join(r.text for r in h.robots.accepted("dingtalk"))
            _check(single, lang)
            h.relay.workers["f"].limiter._tokens = 0.0  # the allowance is spent: all four are merged
            answers = await asyncio.gather(*(h.post("f", b) for b in _bodies()))
            assert all(s == 200 for s, _ in answers)
            merged = [r.text for r in h.robots.accepted("feishu")]
            assert len(merged) == 1, merged
            _check(merged[0], lang)
        assert "VAEDecode" not in single + merged[0] and "stale" not in single + merged[0]
        assert not lookups  # event alerts carry their own detail: no lookup
    finally:
        await runner.cleanup()
    print(f"\n--- {lang} single ---\n{single[:1500]}\n--- {lang} merged ---\n{merged[0][:2500]}")
    assert "gpu-box-2 · oom · ×12" in merged[0]
