"""One simulated ComfyUI process: everything ComfyUI keeps in memory, and ``POST /prompt``.

A simulated restart must look like a real one from outside, so queue, history, sockets, logs and
the ``number`` counter live here and are thrown away with the ``Instance``; what outlives a
restart (outcomes, stats, faults, the listener) belongs to the ``SimServer`` in ``runtime``. This
module sits below the HTTP handlers and the wiring so both can use it without importing each other.
"""

from __future__ import annotations

import datetime
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .executor import Executor
from .graphs import validate_prompt
from .hub import Hub
from .ledger import Outcomes
from .nodes import build_node_classes
from .queue import PromptQueue
from .sysinfo import DeviceOptions
from .versions import DEFAULT_VERSION, VersionProfile, canonical_uuid, profile

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
LOG_RING = 300
# 0.38's answer to a client-chosen prompt_id that is not a canonical lowercase hyphenated UUID.
INVALID_PROMPT_ID = {
    "type": "invalid_prompt_id",
    "message": "prompt_id must be a valid UUID",
    "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
    "omit it to let the server generate one",
    "extra_info": {},
}


@dataclass
class SimOptions:
    """Command-line options; kept here because the Instance and the handlers read them too."""

    host: str = "127.0.0.1"
    port: int = 8188
    scenario: str | None = None
    no_jobs_api: bool = False
    jobs_cancelled: bool = False
    seed: int | None = None
    prefill_history: int = 0
    checkpoints: list[str] = field(default_factory=list)
    device: DeviceOptions = field(default_factory=DeviceOptions)
    step_seconds: float = 0.02
    comfyui_version: str = DEFAULT_VERSION

    @property
    def profile(self) -> VersionProfile:
        """The ComfyUI release being simulated (``--comfyui-version``)."""
        return profile(self.comfyui_version)

    @property
    def jobs_api(self) -> bool:
        """``/api/jobs`` is served: the version has it and ``--no-jobs-api`` is not set."""
        return self.profile.jobs_api and not self.no_jobs_api

    @property
    def cancelled_status(self) -> bool:
        """Interrupted prompts are ``cancelled`` in /api/jobs (0.38, or ``--jobs-cancelled``)."""
        return self.profile.jobs_cancelled or self.jobs_cancelled


class Instance:
    """Everything one ComfyUI process holds in memory."""

    def __init__(self, opts: SimOptions, outcomes: Outcomes, rng: random.Random) -> None:
        self.opts = opts
        self.rng = rng
        self.started_at = time.time()
        self.hub = Hub()
        self.profile = opts.profile
        self.queue = PromptQueue(on_change=self._queue_updated)
        if not self.profile.queue_hides_sensitive:
            # 0.3.64 keeps the keys in extra_data while queued and drops them from history.
            self.queue.history_strip_keys = SENSITIVE_EXTRA_DATA_KEYS
        self.classes = build_node_classes(opts.checkpoints)
        self.executor = Executor(
            self.queue,
            self.hub,
            self.classes,
            self._finished,
            opts.step_seconds,
            log=self.log,
            profile=self.profile,
        )
        self.outcomes = outcomes
        self.logs: list[dict[str, str]] = []
        self._log_size_sent: set[str] = set()

    async def start(self) -> None:
        self.hub.start()
        self.executor.start()
        self.log("Starting server\n")

    async def stop(self) -> None:
        await self.executor.stop()
        await self.hub.stop()

    def _queue_updated(self) -> None:
        self.hub.send_sync("status", self.queue_info(), None)

    def queue_info(self) -> dict[str, Any]:
        return {"status": {"exec_info": {"queue_remaining": self.queue.remaining()}}}

    def _finished(self, outcome: str) -> None:
        self.outcomes.record(outcome)
        seconds = getattr(self.executor, "last_execution_seconds", 0.0)
        self.log(f"Prompt executed in {seconds:.2f} seconds\n")

    # -- log stream (``/internal/logs``) -------------------------------------------------------
    def log(self, message: str) -> None:
        """Append a server log line; subscribed sockets get it as a ``logs`` event."""
        entry = {"t": datetime.datetime.now().isoformat(), "m": message}
        self.logs.append(entry)
        if len(self.logs) > LOG_RING:
            del self.logs[: len(self.logs) - LOG_RING]
        for sid in list(self.hub.log_subscribers):
            # the terminal size is only sent when it "changed", i.e. with a subscriber's first entry
            size = None if sid in self._log_size_sent else {"cols": 80, "rows": 24}
            self._log_size_sent.add(sid)
            self.hub.send_sync("logs", {"entries": [entry], "size": size}, sid)

    # -- POST /prompt ---------------------------------------------------------------------------
    def submit(self, body: Any, usage_source: str | None = None) -> tuple[int, dict[str, Any]]:
        """The body of ComfyUI's ``post_prompt``: returns ``(http_status, json_body)``.

        ``usage_source`` is the ``Comfy-Usage-Source`` request header, which 0.38 copies into
        ``extra_data.comfy_usage_source`` unless the body already has one.
        """
        self.log("got prompt\n")
        if isinstance(body, dict) and "number" in body:
            number: Any = float(body["number"])
        else:
            front = isinstance(body, dict) and "front" in body and bool(body["front"])
            number = self.queue.next_number(front)
        if not isinstance(body, dict) or "prompt" not in body:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return 400, {"error": error, "node_errors": {}}
        prompt = body["prompt"]
        if not isinstance(prompt, dict):
            raise TypeError("prompt must be an object")  # ComfyUI crashes here too -> HTTP 500
        if self.profile.strict_prompt_id:
            prompt_id = body.get("prompt_id")
            if prompt_id is None:
                prompt_id = str(uuid.uuid4())
            elif not canonical_uuid(prompt_id):
                return 400, {"error": INVALID_PROMPT_ID, "node_errors": {}}
        else:
            prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        ok, error, outputs, node_errors = validate_prompt(
            prompt, self.classes, body.get("partial_execution_targets"), self.profile
        )
        extra_data = body.get("extra_data", {})
        if not isinstance(extra_data, dict):
            extra_data = {}
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if self.profile.usage_source and usage_source and "comfy_usage_source" not in extra_data:
            extra_data["comfy_usage_source"] = usage_source
        if not ok:
            self.log(f"invalid prompt: {error}\n")
            return 400, {"error": error, "node_errors": node_errors}
        sensitive: dict[str, Any] = {}
        if self.profile.queue_hides_sensitive:
            sensitive = {k: extra_data.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
        if self.profile.create_time:
            extra_data["create_time"] = int(time.time() * 1000)
        self.queue.put((number, prompt_id, prompt, extra_data, outputs, sensitive))
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}
