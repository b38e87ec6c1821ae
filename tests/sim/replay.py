"""Replay the ComfyUI 0.8.0 (or 0.3.64) recordings against the simulator.

Each version's set is replayed against a simulator started with that ``--comfyui-version``.
All 21 cases (20 for 0.3.64) are replayed in recording order against ONE simulator process, like they were
recorded against one ComfyUI process: history, the output cache and the ``number`` counter carry
over, so even ``number``/``priority`` values and history/job counts can be compared exactly.

Per case the websocket clients of the recording connect (same clientIds), send what the recorder
sent, then the HTTP requests are replayed in order. Before each request the replayer recreates the
server state the recorder saw: when the recorded ``queue_remaining`` at that instant was 0 it waits
for the queue to drain; before "while running" requests and interrupts it waits until a prompt
runs. Sleep durations inside FaultInjection graphs are scaled down to keep the suite fast (step
counts are kept, so the number of progress events is unchanged).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.recordings import RECORDINGS as TRANSCRIPTS  # the recordings, copied into the repo

RECORDED_VERSIONS = ("0.8.0", "0.3.64")

ORDER = [
    "success_with_client_id",
    "success_cached_rerun",
    "success_no_client_id",
    "validation_error_missing_checkpoint",
    "validation_error_malformed_graph",
    "oom_runtime_error",
    "oom_runtime_error_no_client_id",
    "file_not_found_runtime_error",
    "generic_runtime_error",
    "value_error_runtime_no_client_id",
    "interrupt_during_slow_node",
    "interrupt_targeted_and_no_client_id",
    "queue_multiple_prompts",
    "execution_blocked",
    "ws_handshake_and_logs",
    "history_and_jobs_api_survey",
    "reconnect_during_execution",
    "frontend_style_submission",
    "history_scaling_timings",
    "shared_client_id_takeover",
    "queue_and_history_management",
]
TIME_SCALE = 0.25  # recorded sleep seconds -> simulated seconds
MAX_SLEEP = 3.0  # long (interrupted) sleeps are capped; the interrupt comes long before
# The long-queue case issues ten requests while the first prompt must still be running.
CASE_SCALE = {"queue_multiple_prompts": 0.5}


def transcripts(version: str = "0.8.0") -> Any:
    """The folder of one version's recordings (tests/fixtures/comfyui-<version>)."""
    return TRANSCRIPTS.parent / f"comfyui-{version}"


def order(version: str = "0.8.0") -> list[str]:
    """Recording order of a version's cases, from their start times (0.3.64 has no
    history_scaling_timings and recorded reconnect_during_execution before ws_handshake_and_logs)."""
    names = [n for n in ORDER if (transcripts(version) / f"{n}.json").is_file()]
    return sorted(names, key=lambda n: load_case(n, version)["recorded_at_epoch_ms"])


def load_case(name: str, version: str = "0.8.0") -> dict[str, Any]:
    return json.loads((transcripts(version) / f"{name}.json").read_text())


@dataclass
class HttpResult:
    status: int
    content_type: str | None
    body: Any  # parsed JSON, text, or None for an empty body
    raw_len: int


@dataclass
class CaseResult:
    http: list[HttpResult] = field(default_factory=list)
    ws: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    id_map: dict[str, str] = field(default_factory=dict)  # sim prompt id -> recorded prompt id


def _scale_graph(body: Any, scale: float = TIME_SCALE) -> Any:
    body = copy.deepcopy(body)
    if isinstance(body, dict) and isinstance(body.get("prompt"), dict):
        for node in body["prompt"].values():
            if isinstance(node, dict) and node.get("class_type") == "FaultInjection":
                inputs = node.get("inputs", {})
                if isinstance(inputs.get("seconds"), int | float) and inputs["seconds"] > 0:
                    inputs["seconds"] = min(MAX_SLEEP, round(inputs["seconds"] * scale, 3))
    return body


Gap = tuple[str, dict[str, Any], bool]  # (recorded prompt id, POST /prompt body, was interrupted)


def _full_histories(version: str) -> dict[str, dict[str, Any]]:
    """Every entry of every recorded full ``GET /history`` (the recorder may have truncated one;
    then only its kept entries count), oldest first."""
    items: dict[str, dict[str, Any]] = {}
    for name in order(version):
        for entry in load_case(name, version)["http"]:
            if entry["method"] != "GET" or entry["path"] != "/history" or entry["status"] != 200:
                continue
            body = entry["response"]
            if isinstance(body, dict) and body.get("_truncated_by_recorder"):
                body = body["kept"]
            for prompt_id, item in (body or {}).items():
                items.setdefault(prompt_id, item)
    return dict(sorted(items.items(), key=lambda kv: kv[1]["prompt"][0]))


def unrecorded_prompts(version: str = "0.8.0") -> dict[str, list[Gap]]:
    """Prompts the recording server ran before or between cases (they are only visible in full
    /history answers): ``{case that follows them: [(recorded id, POST /prompt body, interrupted)]}``."""
    submitted: set[str] = set()
    first_number: dict[str, float] = {}
    names = order(version)
    for name in names:
        for entry in load_case(name, version)["http"]:
            resp = entry.get("response")
            if (
                entry["method"] == "POST"
                and entry["path"] == "/prompt"
                and isinstance(resp, dict)
                and "prompt_id" in resp
            ):
                submitted.add(resp["prompt_id"])
                first_number.setdefault(name, resp["number"])
    gaps: dict[str, list[Gap]] = {}
    for prompt_id, item in _full_histories(version).items():
        if prompt_id in submitted:
            continue
        number, _, graph, extra_data, _ = item["prompt"]
        body: dict[str, Any] = {"prompt": graph}
        if "client_id" in extra_data:
            body["client_id"] = extra_data["client_id"]
        last = item["status"]["messages"][-1][0]
        follower = next(n for n in names if first_number.get(n, -1) > number)
        gaps.setdefault(follower, []).append((prompt_id, body, last == "execution_interrupted"))
    return gaps


def _status_timeline(case: dict[str, Any]) -> list[tuple[int, int]]:
    """(epoch_ms, queue_remaining) from every status frame any client saw."""
    out = []
    for frames in case["ws"].values():
        for f in frames:
            if f["frame"] == "text" and f["message"]["type"] == "status":
                out.append((f["epoch_ms"], f["message"]["data"]["status"]["exec_info"]["queue_remaining"]))
    # By time only: within one millisecond (0.3.64 sends enqueue, dequeue and completion in the
    # same ms) the frames keep the order each client received them in.
    return sorted(out, key=lambda entry: entry[0])


def _remaining_at(timeline: list[tuple[int, int]], epoch_ms: int) -> int:
    value = 0
    for t, v in timeline:
        if t < epoch_ms:
            value = v
    return value


class WsClient:
    """A recording client: connects, sends its recorded text frames, records what it receives."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, client_id: str | None, sends: list[dict[str, Any]]
    ) -> None:
        self.session = session
        self.url = f"{base}/ws" + (f"?clientId={client_id}" if client_id else "")
        self.sends = sends
        self.frames: list[dict[str, Any]] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None
        self.progress_seen = asyncio.Event()
        self._progress_count = 0
        self.progress_trigger = 2

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(self.url, autoping=True)
        for msg in self.sends:
            await self.ws.send_str(json.dumps(msg))
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.frames.append({"frame": "text", "message": data})
                if data["type"] == "progress":
                    self._progress_count += 1
                    if self._progress_count >= self.progress_trigger:
                        self.progress_seen.set()
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.frames.append(decode_binary(msg.data))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)


def decode_binary(data: bytes) -> dict[str, Any]:
    """Decode a binary frame into the recorder's summary form."""
    kind = int.from_bytes(data[:4], "big")
    out: dict[str, Any] = {"frame": "binary", "size": len(data), "event_type": kind}
    if kind == 3:
        n = int.from_bytes(data[4:8], "big")
        out.update(event_name="TEXT", text_node_id=data[8 : 8 + n].decode(), text=data[8 + n :].decode())
    elif kind == 1:
        out.update(event_name="PREVIEW_IMAGE", image_format_code=int.from_bytes(data[4:8], "big"))
    elif kind == 4:
        n = int.from_bytes(data[4:8], "big")
        out.update(
            event_name="PREVIEW_IMAGE_WITH_METADATA",
            metadata=json.loads(data[8 : 8 + n]),
            image_bytes=len(data) - 8 - n,
        )
    return out


class Replayer:
    """Drives one simulator through all recorded cases."""

    def __init__(self, base_url: str, version: str = "0.8.0") -> None:
        self.base = base_url
        self.version = version
        self.results: dict[str, CaseResult] = {}
        self._settled: str | None = None
        self.gaps = unrecorded_prompts(version)

    async def _request(self, session: aiohttp.ClientSession, method: str, path: str, body: Any) -> HttpResult:
        kwargs: dict[str, Any] = {}
        if isinstance(body, str):  # recorded raw bodies ("{not json", "[1,2,3]")
            kwargs["data"] = body.encode()
        elif body is not None:
            kwargs["json"] = body
        async with session.request(method, self.base + path, **kwargs) as resp:
            raw = await resp.read()
            ctype = resp.headers.get("Content-Type")
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
        return HttpResult(resp.status, ctype, parsed, len(raw))

    async def _remaining(self, session: aiohttp.ClientSession) -> tuple[int, Any]:
        async with session.get(self.base + "/_sim/stats") as resp:
            stats = await resp.json()
        return stats["queue_pending"] + (1 if stats["running"] else 0), stats["running"]

    async def wait_idle(self, session: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (await self._remaining(session))[0] == 0:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("queue did not drain")

    async def wait_running(self, session: aiohttp.ClientSession, settle: float = 0.3) -> None:
        """Wait until a prompt runs; the first time for a prompt, let it make some progress."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            running = (await self._remaining(session))[1]
            if running:
                if running != self._settled:
                    self._settled = running
                    await asyncio.sleep(settle)
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("nothing started running")

    async def run_case(self, session: aiohttp.ClientSession, name: str) -> CaseResult:
        case = load_case(name, self.version)
        result = CaseResult()
        for rec_id, body, interrupted in self.gaps.get(name, []):
            res = await self._request(session, "POST", "/prompt", _scale_graph(body))
            result.id_map[res.body["prompt_id"]] = rec_id
            if interrupted:  # the recorder interrupted it: do the same once it runs
                await self.wait_running(session, settle=0.05)
                await self._request(session, "POST", "/interrupt", {})
            await self.wait_idle(session)
        timeline = _status_timeline(case)
        clients: dict[str, WsClient] = {}
        for cname, frames in case["ws"].items():
            sends = [f["message"] for f in frames if f["frame"] == "sent_text"]
            clients[cname] = WsClient(session, self.base, case["ws_client_ids"].get(cname), sends)
        deferred = {"submitter_reconnected"} if "submitter_reconnected" in clients else set()
        for cname, client in clients.items():
            if cname not in deferred:
                await client.connect()
                await asyncio.sleep(0.02)
        trigger = None
        if name == "reconnect_during_execution":
            trigger = asyncio.get_running_loop().create_task(self._reconnect(clients))
        elif name == "shared_client_id_takeover":
            trigger = asyncio.get_running_loop().create_task(self._takeover(clients))
        await asyncio.sleep(0.05)

        if name == "history_scaling_timings":
            await self._history_scaling(session, case, result)
        else:
            await self._replay_http(session, case, timeline, result)
        if trigger is not None:
            await asyncio.wait_for(trigger, 20)
        await self.wait_idle(session)
        await asyncio.sleep(0.15)
        for cname, client in clients.items():
            if not (client.ws is None or client.ws.closed):
                await client.close()
            result.ws[cname] = client.frames
        return result

    async def _replay_http(
        self,
        session: aiohttp.ClientSession,
        case: dict[str, Any],
        timeline: list[tuple[int, int]],
        result: CaseResult,
    ) -> None:
        to_sim: dict[str, str] = {}
        for entry in case["http"]:
            label = entry.get("label") or ""
            is_submit = entry["method"] == "POST" and entry["path"] in ("/prompt", "/api/prompt")
            busy = _remaining_at(timeline, entry["epoch_ms"]) > 0
            if is_submit:
                pass  # submissions never wait for the server
            elif busy and (
                "while" in label or "before" in label or entry["path"] in ("/interrupt", "/queue")
            ):
                await self.wait_running(session)
            elif not busy:
                await self.wait_idle(session)
            path, body = entry["path"], entry["request_body"]
            for rec_id, sim_id in to_sim.items():
                path = path.replace(rec_id, sim_id)
                if body is not None and not isinstance(body, str):
                    body = json.loads(json.dumps(body).replace(rec_id, sim_id))
            if is_submit:
                body = _scale_graph(body, CASE_SCALE.get(case["case"], TIME_SCALE))
            res = await self._request(session, entry["method"], path, body)
            if is_submit:
                await asyncio.sleep(0.003)  # distinct create_time ms, like the recorder's pacing
            if (
                entry["method"] == "POST"
                and path == "/prompt"
                and isinstance(res.body, dict)
                and "prompt_id" in res.body
                and isinstance(entry["response"], dict)
            ):
                to_sim[entry["response"]["prompt_id"]] = res.body["prompt_id"]
                result.id_map[res.body["prompt_id"]] = entry["response"]["prompt_id"]
            result.http.append(res)

    async def _history_scaling(
        self, session: aiohttp.ClientSession, case: dict[str, Any], result: CaseResult
    ) -> None:
        """Wipe, then 10,050 tiny prompts (like the recorder) through /_sim/enqueue."""
        res = await self._request(session, "POST", "/history", {"clear": True})
        result.http.append(res)
        async with session.post(
            self.base + "/_sim/enqueue", json={"outcome": "success", "count": 10050, "output": "PreviewImage"}
        ) as resp:
            assert resp.status == 200
        await self.wait_idle(session, timeout=60)

    async def _reconnect(self, clients: dict[str, WsClient]) -> None:
        await clients["submitter"].progress_seen.wait()
        await clients["submitter"].close()
        await clients["submitter_reconnected"].connect()

    async def _takeover(self, clients: dict[str, WsClient]) -> None:
        await clients["impersonator"].progress_seen.wait()
        await clients["submitter"].close()

    async def run_all(self) -> dict[str, CaseResult]:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for name in order(self.version):
                self.results[name] = await self.run_case(session, name)
        return self.results
