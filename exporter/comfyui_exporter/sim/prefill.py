"""``--prefill-history N``: start with N finished prompts without running them.

Benchmarks need a server holding ~10,000 history entries. Executing that many prompts takes
a real ComfyUI over a minute; here the entries are built directly, shaped like the recording
``history_scaling_timings`` (tiny cached EmptyImage -> FaultInjection(pass) -> PreviewImage graph,
no client_id, ~880 bytes each), with ``number`` continuing after them.
"""

from __future__ import annotations

import random
import time
import uuid

from .queue import MAXIMUM_HISTORY_SIZE, PromptQueue


def prefill_history(queue: PromptQueue, count: int, rng: random.Random) -> None:
    """Insert ``count`` completed entries (oldest first) and advance the ``number`` counter."""
    now = int(time.time() * 1000)
    for i in range(count):
        prompt_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = now - (count - i) * 100
        graph = {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
            },
            "2": {
                "class_type": "FaultInjection",
                "inputs": {
                    "mode": "pass",
                    "seconds": 0.0,
                    "steps": 1,
                    "salt": 12345,
                    "emit_preview": False,
                    "emit_text": False,
                    "image": ["1", 0],
                },
            },
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
        }
        number = queue.next_number(False)
        image = {"filename": f"ComfyUI_temp_prefl_{i + 1:05}_.png", "subfolder": "", "type": "temp"}
        if len(queue.history) > MAXIMUM_HISTORY_SIZE:
            queue.history.pop(next(iter(queue.history)))
        queue.history[prompt_id] = {
            "prompt": [number, prompt_id, graph, {"create_time": created}, ["3"]],
            "outputs": {"3": {"images": [image]}},
            "status": {
                "status_str": "success",
                "completed": True,
                "messages": [
                    ["execution_start", {"prompt_id": prompt_id, "timestamp": created + 1}],
                    [
                        "execution_cached",
                        {"nodes": ["1", "2", "3"], "prompt_id": prompt_id, "timestamp": created + 1},
                    ],
                    ["execution_success", {"prompt_id": prompt_id, "timestamp": created + 2}],
                ],
            },
            "meta": {"3": {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}},
        }
