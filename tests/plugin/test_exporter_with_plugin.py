"""The exporter process reading a plugin-equipped (stand-in) ComfyUI: rejections, guard trips and
node timings reach /metrics and /failures; a restart of ComfyUI (boot id change) is followed."""

from __future__ import annotations

import json

from tests.support.stack import running_exporter, wait_until

from .harness import ComfyWorld, graph, guard_graph, recorded_submissions


def test_rejections_trips_and_node_timings_reach_the_exporter(world: ComfyWorld) -> None:
    with running_exporter("--comfyui-url", f"tap={world.url}", "--poll-interval", "1") as exporter:
        wait_until(lambda: exporter.value("comfyui_plugin_connected", comfyui="tap") == 1, 15, what="plugin")
        assert (
            exporter.value("comfyui_prompt_rejections_total", comfyui="tap", reason="value_not_in_list") == 0
        )
        missing_checkpoint = next(
            e["request_body"] for e in recorded_submissions() if "ckpt_name" in json.dumps(e["response"])
        )
        assert world.submit(missing_checkpoint).status_code == 400
        wait_until(
            lambda: (
                exporter.value("comfyui_prompt_rejections_total", comfyui="tap", reason="value_not_in_list")
                == 1
            ),
            10,
            what="rejection counted",
        )
        rejection = exporter.failures()[0]
        assert rejection["kind"] == "rejection" and rejection["error_type"] == "value_not_in_list"
        assert rejection["node_type"] == "CheckpointLoaderSimple" and rejection["input_name"] == "ckpt_name"

        assert world.submit({"prompt": guard_graph(10**9, "warn")}).status_code == 200
        assert world.submit({"prompt": graph("pass")}).status_code == 200
        world.wait_idle()
        wait_until(
            lambda: exporter.value("comfyui_vram_guard_trips_total", comfyui="tap", action="warn") == 1, 10
        )
        assert any(f["kind"] == "vram_guard" for f in exporter.failures())
        wait_until(
            lambda: exporter.value(
                "comfyui_node_execution_seconds_count", comfyui="tap", node_type="FaultInjection"
            ),
            10,
            what="node timing",
        )
