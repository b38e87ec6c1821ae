"""Field-by-field comparison of simulator output with recorded ComfyUI output.

``diff`` walks both documents together: objects must have the same keys in the same order, lists
the same length, scalars the same JSON type (int, float, bool, str, null are all distinct) and the
same value, except for keys whose values are inherently run-specific (timestamps, free memory,
server-generated ids and file names).
"""

from __future__ import annotations

import json
from typing import Any

VOLATILE_KEYS = frozenset(
    {
        "timestamp",
        "create_time",
        "execution_start_time",
        "execution_end_time",
        "ram_free",
        "vram_free",
        "torch_vram_free",
        "sid",
        "t",
        "m",
        "filename",
        "seconds",  # FaultInjection sleep durations are scaled down by the replayer
        "argv",  # the simulator's command line carries its own port
    }
)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def diff(rec: Any, got: Any, path: str = "$", key: str | None = None, values: bool = True) -> list[str]:
    """Differences between a recorded value and the simulator's (empty list = equivalent)."""
    out: list[str] = []
    if _kind(rec) != _kind(got):
        return [
            f"{path}: recorded {_kind(rec)} {json.dumps(rec)[:80]}, got {_kind(got)} {json.dumps(got)[:80]}"
        ]
    if isinstance(rec, dict):
        if list(rec) != list(got):
            out.append(f"{path}: keys {list(rec)[:12]} != {list(got)[:12]}")
        for k in rec:
            if k in got:
                out += diff(rec[k], got[k], f"{path}.{k}", k, values)
    elif isinstance(rec, list):
        if len(rec) != len(got):
            out.append(f"{path}: length {len(rec)} != {len(got)}")
        for i, (a, b) in enumerate(zip(rec, got, strict=False)):
            out += diff(a, b, f"{path}[{i}]", key, values)
    elif values and key not in VOLATILE_KEYS and rec != got:
        out.append(f"{path}: recorded {rec!r} != got {got!r}")
    return out


def remap_ids(doc: Any, id_map: dict[str, str]) -> Any:
    """Replace the simulator's prompt ids by the recorded ones (keys and values alike)."""
    if not id_map or doc is None:
        return doc
    text = json.dumps(doc)
    for sim_id, rec_id in id_map.items():
        text = text.replace(sim_id, rec_id)
    return json.loads(text)


def ws_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frames the server sent (drops the recorder's notes and the client's own messages)."""
    return [f for f in frames if f["frame"] in ("text", "binary")]


def frame_token(frame: dict[str, Any]) -> str:
    if frame["frame"] == "binary":
        return f"binary:{frame['event_type']}"
    return str(frame["message"]["type"])


def comparable_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """What of a frame is compared: the whole text message; for binary, type, size and headers."""
    if frame["frame"] == "text":
        return frame["message"]
    keep = (
        "event_type",
        "event_name",
        "size",
        "text_node_id",
        "text",
        "image_format_code",
        "metadata",
        "image_bytes",
    )
    return {k: frame[k] for k in keep if k in frame}


def loose_tokens(frames: list[dict[str, Any]]) -> list[str]:
    """Event sequence without status frames, each run of progress-type frames collapsed to one token.

    Used where the number of progress frames depends on when an interrupt/reconnect happened.
    """
    out: list[str] = []
    for f in frames:
        tok = frame_token(f)
        if tok == "status":
            continue
        if tok in ("progress", "progress_state") or tok.startswith("binary"):
            tok = "~progress~"
            if out and out[-1] == tok:
                continue
        out.append(tok)
    return out


def status_values(frames: list[dict[str, Any]]) -> list[int]:
    return [
        f["message"]["data"]["status"]["exec_info"]["queue_remaining"]
        for f in frames
        if f["frame"] == "text" and f["message"]["type"] == "status"
    ]
