"""The plugin across ComfyUI lines: what it detects and does differently on 0.38 than on 0.8.0.

0.38 answers HTTP 400 ``invalid_prompt_id`` to a client prompt_id that is not a canonical UUID, before
validation; the plugin checks it with ComfyUI's own ``server.validate_job_id`` when that exists. The
stand-in is 0.8.0 (any prompt_id accepted); the 0.38 behaviour is added to it by ``tamper`` with a
validator of the same contract (canonical UUID or ValueError), so both lines run the same hooks.
"""

from __future__ import annotations

import types
import uuid
from pathlib import Path

from comfyui_exporter.model.plugin_records import REJECT_REASONS, parse_batch

from .harness import ComfyWorld, graph
from .test_plugin_tap import events


def _canonical_uuid(value: object) -> str:
    if not isinstance(value, str) or str(uuid.UUID(value)) != value:
        raise ValueError("job id must be a UUID in canonical lowercase hyphenated form")
    return value


def _as_0_38(mods: dict[str, types.ModuleType]) -> None:
    mods["server"].validate_job_id = _canonical_uuid
    cache = types.ModuleType("comfy_execution.cache_provider")
    cache.register_cache_provider = lambda provider: None
    import sys

    sys.modules["comfy_execution.cache_provider"] = cache


def test_on_0_8_0_a_free_form_prompt_id_is_no_rejection(comfyui_dir: Path) -> None:
    world = ComfyWorld(comfyui_dir).start()
    try:
        assert "submissions.prompt_id" not in world.tap.hooks
        assert world.tap.status()["comfyui_features"] == {
            "jobs_api": False, "prompt_id_validation": False, "cache_provider_api": False}
        resp = world.submit({"prompt": graph("pass"), "prompt_id": "my-own-id"})
        assert resp.status_code == 200  # 0.8.0 keeps any id
        world.wait_idle()
        assert not [e for e in events(world) if e["kind"] == "prompt_rejected"]
    finally:
        world.stop()


def test_on_0_38_a_non_uuid_prompt_id_is_a_rejection_and_a_uuid_is_not(comfyui_dir: Path) -> None:
    world = ComfyWorld(comfyui_dir, tamper=_as_0_38).start()
    try:
        assert world.tap.hooks["submissions.prompt_id"] == "active"
        features = world.tap.status()["comfyui_features"]
        assert features["prompt_id_validation"] and features["cache_provider_api"]
        world.submit({"prompt": graph("pass"), "prompt_id": "My-Own-Id"})
        world.submit({"prompt": graph("pass"), "prompt_id": str(uuid.uuid4())})
        world.submit({"prompt": graph("pass"), "prompt_id": str(uuid.uuid4()).upper()})  # not canonical
        world.wait_idle()
        rejected = [e for e in events(world) if e["kind"] == "prompt_rejected"]
        assert [(e["error_type"], e["prompt_id"].islower()) for e in rejected] == [
            ("invalid_prompt_id", False), ("invalid_prompt_id", False)]
        assert rejected[0]["prompt_id"] == "My-Own-Id" and rejected[0]["node_errors"] == []
        assert world.tap.errors == 0
        body = {"boot_id": "b", "seq": rejected[-1]["seq"], "oldest_seq": 1, "events": rejected}
        records = parse_batch(body)
        assert [r.reason for r in records] == ["invalid_prompt_id"] * 2
    finally:
        world.stop()


def test_0_38_reject_reasons_are_label_values_not_other() -> None:
    for reason in ("missing_node_type", "invalid_prompt_id", "dependency_cycle", "invalid_dynamic_input"):
        assert reason in REJECT_REASONS
