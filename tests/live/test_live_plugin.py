"""The exporter's plugin inside a real ComfyUI: its event stream agrees with ComfyUI's history.

Needs ``COMFYUI_LIVE_PLUGIN=1`` next to ``COMFYUI_LIVE_URL`` (install the plugin first:
``comfyui-exporter install-plugin /path/to/ComfyUI``, then restart ComfyUI). Checks that every hook
the plugin installs is live in that version, that each prompt (with and without client_id) gives
submitted → started → node events → finished with the outcome history has, and that a validation
rejection, which only the plugin can see, reaches the exporter's /metrics.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.real_comfyui import RealComfyUI
from tests.support.stack import ExporterProcess, wait_until

from .test_live_comfyui import report

pytestmark = [pytest.mark.live, pytest.mark.live_plugin]
EVENTS = "/comfyui-exporter/v1/events"
# history outcome -> the plugin's prompt_finished status
PLUGIN_STATUS = {"success": "success", "interrupted": "interrupted"}


def events_after(comfy: RealComfyUI, seq: int, boot: str) -> list[dict]:
    body = comfy.get(f"{EVENTS}?after={seq}&wait=0&limit=5000&boot={boot}")
    assert body["boot_id"] == boot, "ComfyUI restarted during the test"
    return body["events"]


def test_hooks_active_and_stream_matches_history(comfy: RealComfyUI) -> None:
    status = comfy.get("/comfyui-exporter/v1/status")
    assert status["hooks"] and all(state == "active" for state in status["hooks"].values()), status["hooks"]
    comfy.wait_idle()
    start_seq, boot = comfy.get("/comfyui-exporter/v1/status")["seq"], status["boot_id"]
    tag = uuid.uuid4().hex[:8]
    ids = []
    for client_id in (None, f"someone-else-{tag}"):
        ids += [comfy.submit(m, client_id=client_id, tag=tag) for m in ("success", "oom", "node_exception")]
        slow = comfy.submit("sleep", client_id=client_id, seconds=30.0, tag=tag)
        comfy.interrupt_when_running(slow)
        ids.append(slow)
    truth = comfy.truth(ids)
    time.sleep(0.5)
    by_prompt: dict[str, list[dict]] = {}
    for ev in events_after(comfy, start_seq, boot):
        by_prompt.setdefault(ev.get("prompt_id"), []).append(ev)
    for pid in ids:
        kinds = [e["kind"] for e in by_prompt.get(pid, [])]
        assert kinds[:2] == ["prompt_submitted", "prompt_started"], (pid, kinds)
        assert kinds[-1] == "prompt_finished", (pid, kinds)
        assert "node_started" in kinds, (pid, kinds)
        finished = by_prompt[pid][-1]
        outcome = truth.outcome_of[pid]
        assert finished["status"] == PLUGIN_STATUS.get(outcome, "error"), (pid, outcome, finished)
        assert (outcome == "success") == ("node_finished" in kinds), (pid, kinds)
        submitted = by_prompt[pid][0]
        assert submitted["has_client_id"] == (pid not in ids[:4]), submitted
    assert comfy.get("/comfyui-exporter/v1/status")["errors"] == status["errors"], "the plugin logged errors"
    report(f"{comfy.version()}.plugin", {"hooks": status["hooks"], "prompts_checked": len(ids)})


def test_rejection_reaches_the_exporter(comfy: RealComfyUI) -> None:
    proc = ExporterProcess(["--no-gpu", "--comfyui-url", f"live={comfy.url}", "--poll-interval", "1"]).start()
    try:
        connected = lambda: proc.value("comfyui_plugin_connected", comfyui="live") == 1  # noqa: E731
        wait_until(connected, 60, what="exporter reads the plugin")
        reason = ("comfyui_prompt_rejections_total", {"comfyui": "live", "reason": "value_not_in_list"})
        before = proc.value(reason[0], **reason[1])
        assert before is not None, "rejection reasons are not pre-created at 0"
        assert comfy.submit_invalid() == 400
        wait_until(lambda: proc.value(reason[0], **reason[1]) == before + 1, 30, what="rejection counted")
        time.sleep(2)
        assert proc.value(reason[0], **reason[1]) == before + 1
    finally:
        proc.stop()
