"""Talking to a real ComfyUI that has the test node (tests/live/nodes/comfyui_exporter_testnode).

Shared by the live suite (tests/live/) and the real-ComfyUI bench (bench/real_comfyui.py). Ground
truth is ComfyUI's own ``/history`` entry of each prompt we submitted: the outcome the exporter must
count is derived from it with the exporter's classifier, and separately checked against the outcome
the test node was asked for, so a ComfyUI that records failures differently shows up as such.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from comfyui_exporter.model.classify import classify

TEST_NODE = "ComfyUIExporterTestOutcome"
# What each test-node mode must be counted as ("success", "interrupted" or an error_type).
EXPECTED = {
    "success": "success",
    "oom": "oom",
    "cuda_error": "cuda_error",
    "model_not_found": "model_not_found",
    "model_load_error": "model_load_error",
    "node_exception": "node_exception",
}
ERROR_TYPES = ("oom", "cuda_error", "model_not_found", "model_load_error", "node_exception")


@dataclass
class Truth:
    """Outcomes as ComfyUI recorded them in history, in the exporter's terms."""

    finished: int = 0
    interrupted: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_TYPES, 0))
    outcome_of: dict[str, str] = field(default_factory=dict)  # prompt_id -> success/interrupted/type
    error_ms: dict[str, int] = field(default_factory=dict)  # prompt_id -> execution_error timestamp


def graph(mode: str, seconds: float = 0.0, tag: str = "") -> dict[str, Any]:
    """A one-node API prompt: the test node is an output node, so this is a valid prompt."""
    return {"1": {"class_type": TEST_NODE, "inputs": {"mode": mode, "seconds": seconds, "tag": tag}}}


def outcome_of_entry(entry: dict[str, Any]) -> tuple[str, int | None]:
    """(outcome, timestamp ms of the final message) of one history entry."""
    messages = (entry.get("status") or {}).get("messages") or []
    names = [m[0] for m in messages if isinstance(m, list) and m]
    last = messages[-1] if messages else None
    ts = last[1].get("timestamp") if last and isinstance(last[1], dict) else None
    if "execution_interrupted" in names:
        return "interrupted", ts
    if last and last[0] == "execution_error":
        err = last[1]
        return classify(err.get("exception_type"), err.get("exception_message")).value, ts
    return "success", ts


class RealComfyUI:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    # ------------------------------------------------------------------------------------ HTTP
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {str(body)[:200]}")
        return body

    def version(self) -> str:
        return self.get("/system_stats")["system"].get("comfyui_version", "?")

    def has_test_node(self) -> bool:
        status, body = self.request("GET", f"/object_info/{TEST_NODE}")
        return status == 200 and isinstance(body, dict) and TEST_NODE in body

    def has_jobs_api(self) -> bool:
        return self.request("GET", "/api/jobs?limit=1")[0] == 200

    # ------------------------------------------------------------------------------- prompts
    def submit(
        self,
        mode: str,
        client_id: str | None = None,
        seconds: float = 0.0,
        tag: str = "",
        workflow: dict[str, Any] | None = None,
    ) -> str:
        """POST /prompt with one test node; returns the prompt id (chosen by ComfyUI)."""
        body: dict[str, Any] = {"prompt": graph(mode, seconds, tag)}
        if client_id is not None:
            body["client_id"] = client_id
        if workflow is not None:  # what the frontend attaches: the UI graph, kept in history
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        status, answer = self.request("POST", "/prompt", body)
        if status != 200:
            raise RuntimeError(f"POST /prompt {mode}: HTTP {status}: {str(answer)[:300]}")
        return answer["prompt_id"]

    def submit_invalid(self) -> int:
        """A prompt ComfyUI rejects at validation (a mode not in the list): HTTP 400."""
        body = {"prompt": graph("no-such-mode", 0.0, uuid.uuid4().hex)}
        return self.request("POST", "/prompt", body)[0]

    def running_ids(self) -> list[str]:
        q = self.get("/queue")
        return [item[1] for item in q.get("queue_running", [])]

    def pending_count(self) -> int:
        q = self.get("/queue")
        return len(q.get("queue_running", [])) + len(q.get("queue_pending", []))

    def interrupt_when_running(self, prompt_id: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while prompt_id not in self.running_ids():
            if time.monotonic() > deadline:
                raise AssertionError(f"{prompt_id} never started running")
            time.sleep(0.05)
        time.sleep(0.2)
        self.request("POST", "/interrupt", {})

    def entry(self, prompt_id: str) -> dict[str, Any] | None:
        body = self.get(f"/history/{prompt_id}")
        entry = body.get(prompt_id) if isinstance(body, dict) else None
        return entry if entry and (entry.get("status") or {}).get("completed") is not None else None

    def wait_done(self, ids: Iterable[str], timeout: float = 120.0) -> dict[str, dict[str, Any]]:
        """Waits until every prompt is in history; returns their entries."""
        pending, done = list(ids), {}
        deadline = time.monotonic() + timeout
        while pending:
            for pid in list(pending):
                entry = self.entry(pid)
                if entry is not None:
                    done[pid] = entry
                    pending.remove(pid)
            if pending:
                if time.monotonic() > deadline:
                    raise AssertionError(f"not in history after {timeout} s: {pending}")
                time.sleep(0.1)
        return done

    def wait_idle(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending_count():
            if time.monotonic() > deadline:
                raise AssertionError("ComfyUI's queue did not drain")
            time.sleep(0.1)

    def truth(self, ids: Iterable[str], timeout: float = 120.0) -> Truth:
        t = Truth()
        for pid, entry in self.wait_done(ids, timeout).items():
            outcome, ts = outcome_of_entry(entry)
            t.finished += 1
            t.outcome_of[pid] = outcome
            if outcome == "interrupted":
                t.interrupted += 1
            elif outcome != "success":
                t.failures[outcome] += 1
                if ts is not None:
                    t.error_ms[pid] = int(ts)
        return t
