"""Access to the ComfyUI recordings (copied from shared/comfyui-transcripts into the repo).

0.8.0 is the default set; ``version="0.3.64"`` reads the recordings of a real 0.3.64 (no /api/jobs).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "comfyui-0.8.0"
VERSIONS = ("0.8.0", "0.3.64")
_HISTORY_PATH = re.compile(r"^/(api/)?history(\?|/|$)")


def folder(version: str = "0.8.0") -> Path:
    return RECORDINGS.parent / f"comfyui-{version}"


def case_names(version: str = "0.8.0") -> list[str]:
    return sorted(p.stem for p in folder(version).glob("*.json"))


@cache
def load(case: str, version: str = "0.8.0") -> dict[str, Any]:
    return json.loads((folder(version) / f"{case}.json").read_text(encoding="utf-8"))


def _body(entry: dict[str, Any]) -> Any:
    body = entry.get("response")
    if isinstance(body, dict) and body.get("_truncated_by_recorder"):
        return body["kept"]
    return body


def history_items(case: str, version: str = "0.8.0") -> dict[str, dict[str, Any]]:
    """Every history entry any recorded GET /history… response returned, by prompt id."""
    items: dict[str, dict[str, Any]] = {}
    for entry in load(case, version)["http"]:
        if entry["method"] != "GET" or entry["status"] != 200 or not _HISTORY_PATH.match(entry["path"]):
            continue
        body = _body(entry)
        if isinstance(body, dict):
            for prompt_id, item in body.items():
                if isinstance(item, dict) and "status" in item:
                    items[prompt_id] = item
    return items


def jobs(case: str, version: str = "0.8.0") -> dict[str, dict[str, Any]]:
    """Every job summary any recorded /api/jobs response returned, by id."""
    out: dict[str, dict[str, Any]] = {}
    for entry in load(case, version)["http"]:
        if entry["method"] != "GET" or entry["status"] != 200 or not entry["path"].startswith("/api/jobs"):
            continue
        body = _body(entry)
        if isinstance(body, dict) and isinstance(body.get("jobs"), list):
            for job in body["jobs"]:
                out[job["id"]] = job
        elif isinstance(body, dict) and "id" in body and "status" in body:
            out[body["id"]] = body
    return out


def http_entries(case: str, path_prefix: str) -> list[dict[str, Any]]:
    return [e for e in load(case)["http"] if e["path"].startswith(path_prefix)]


def ws_text_frames(case: str, version: str = "0.8.0") -> list[tuple[str, dict[str, Any]]]:
    """(client name, message) for every text frame the server sent in a case."""
    out = []
    for client, frames in load(case, version)["ws"].items():
        for frame in frames:
            if frame.get("frame") == "text":
                out.append((client, frame["message"]))
    return out
