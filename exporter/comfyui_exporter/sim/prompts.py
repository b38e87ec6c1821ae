"""The prompts simulated users submit: ``/_sim/enqueue`` specs turned into ``POST /prompt`` bodies.

Both the control API and the scenario driver feed these bodies to ``Instance.submit``, and the
benchmarks build the same graphs to send over HTTP; keeping them free of aiohttp and of the
handlers lets all three share one definition of "a prompt that ends in outcome X".
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

OUTCOME_MODES = {
    "success": "sleep",
    "oom": "oom",
    "cuda_error": "cuda_error",
    "file_not_found": "file_not_found",
    "model_load_error": "model_load_error",
    "runtime_error": "runtime_error",
    "value_error": "value_error",
    "interrupt": "interrupt",
    "blocked": "block",
}


def fault_graph(
    mode: str,
    seconds: float,
    steps: int,
    salt: int,
    preview: bool = False,
    text: bool = False,
    output: str = "SaveImage",
) -> dict[str, Any]:
    """EmptyImage -> FaultInjection -> SaveImage/PreviewImage, the recordings' graph."""
    save: dict[str, Any] = {"images": ["2", 0]}
    if output == "SaveImage":
        save["filename_prefix"] = "fault_injection"
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "FaultInjection",
            "inputs": {
                "mode": mode,
                "seconds": float(seconds),
                "steps": int(steps),
                "salt": salt,
                "emit_preview": preview,
                "emit_text": text,
                "image": ["1", 0],
            },
        },
        "3": {"class_type": output, "inputs": save},
    }


def workflow_document(kb: float, rng: random.Random) -> dict[str, Any]:
    """A frontend-style UI workflow of about ``kb`` KiB with an ``id`` (becomes ``workflow_id``)."""
    doc: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "revision": 0,
        "last_node_id": 3,
        "last_link_id": 2,
        "nodes": [],
        "links": [],
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}, "frontendVersion": "1.35.9"},
        "version": 0.4,
    }
    target = int(kb * 1024)
    size = len(json.dumps(doc))
    i = 0
    # Track the size incrementally: re-serialising the whole document per node was quadratic.
    while size < target:
        i += 1
        node = {
            "id": i,
            "type": "FaultInjection",
            "pos": [i * 10, 200],
            "size": [315, 130],
            "flags": {},
            "order": i,
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": i - 1}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [i], "slot_index": 0}],
            "properties": {"Node name for S&R": "FaultInjection"},
            "widgets_values": ["sleep", 3.0, 3, 0, False, False],
        }
        link = [i - 1, i - 1, 0, i, 0, "IMAGE"]
        doc["nodes"].append(node)
        doc["links"].append(link)
        size += len(json.dumps(node)) + len(json.dumps(link)) + 4  # two ", " separators
    return doc


def enqueue_bodies(spec: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """POST /prompt bodies for one ``/_sim/enqueue`` request."""
    outcome = spec.get("outcome", "success")
    if outcome not in OUTCOME_MODES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {sorted(OUTCOME_MODES)}")
    seconds = float(spec.get("seconds", 0.0) or 0.0)
    steps = int(spec.get("progress_steps", 0) or 0)
    mode = OUTCOME_MODES[outcome]
    if outcome == "success" and seconds <= 0 and steps <= 0:
        mode = "pass"
    bodies = []
    for _ in range(max(1, int(spec.get("count", 1) or 1))):
        graph = fault_graph(
            mode,
            seconds,
            steps,
            rng.randrange(1, 2**62),
            bool(spec.get("emit_preview", False)),
            bool(spec.get("emit_text", False)),
            spec.get("output", "SaveImage"),
        )
        body: dict[str, Any] = {"prompt": graph}
        if spec.get("client_id") is not None:
            body["client_id"] = spec["client_id"]
        if spec.get("front"):
            body["front"] = True
        kb = float(spec.get("workflow_kb", 0) or 0)
        if kb > 0:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow_document(kb, rng)}}
        bodies.append(body)
    return bodies
