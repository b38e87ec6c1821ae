"""What reaches each robot: dialect, language, links, mentions, signatures, summaries, enrichment."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from relay_helpers import alert, captured, harness, payload

from comfyui_exporter.relay.config import Mention, RateLimit, TargetConfig
from comfyui_exporter.relay.redact import Secret
from comfyui_exporter.relay.robots import Outcome, Part, make_robot
from comfyui_exporter.relay.testing import FakeRobots

DING = {
    "type": "dingtalk",
    "robot": {"secret": "SECding0001secret", "keyword": "告警"},
    "keyword": "告警",
    "mention": {"mobiles": ["13800000001"], "user_ids": ["ops-lead"], "all_on_critical": True},
}
WECOM = {"type": "wecom", "language": "en", "mention": {"mobiles": ["13800000002"], "user_ids": ["wang"]}}
FEISHU = {
    "type": "feishu",
    "robot": {"secret": "feishu-secret-0001", "keyword": "ComfyUI"},
    "keyword": "ComfyUI",
}


async def test_each_robot_receives_a_signed_message_in_its_dialect(tmp_path: Path) -> None:
    targets = {"ops-dingtalk": DING, "ops-wecom": WECOM, "ops-feishu": FEISHU}
    async with harness(tmp_path, targets) as h:
        body = captured("firing")
        for name in targets:
            status, answer = await h.post(name, body)
            assert status == 200 and answer["status"] == "delivered", answer
        assert not h.robots.rejected(), [(r.kind, r.code, r.message) for r in h.robots.rejected()]
        ding = h.robots.accepted("dingtalk")[0]
        text = ding.text
        # zh template, DingTalk markdown, summary counts before details
        assert ding.body["msgtype"] == "markdown" and ding.title.startswith("[告警 ×2]")
        assert text.index("**汇总**：ComfyUIOutOfMemory ×2") < text.index("- 实例：gpu-box-1")
        assert (
            "- 错误类型：oom" in text and "显存不足 (OOM) 🔥" in text and "1 prompt failed with OOM" in text
        )
        # start time in the configured zone (captured 16:14:27Z -> 00:14:27 CST next day)
        assert re.search(r"开始时间：2026-11-29 00:14:27 CST", text), text
        assert "[运行手册](https://runbooks.example/comfyui#oom)" in text
        assert "[仪表盘](https://grafana.example/d/comfyui)" in text
        assert "(http://prometheus:9090/graph?g0.expr=increase%28comfyui_prompt_failures_total" in text
        silence = re.search(r"\[🔕 静默此组\]\((\S+)\)", text)
        assert silence and silence.group(1).startswith(body["externalURL"] + "/#/silences/new?filter=")
        assert (
            unquote(silence.group(1).split("filter=")[1])
            == '{alertname="ComfyUIOutOfMemory",comfyui="gpu-box-1"}'
        )
        # critical: mentions in the text and the at block
        assert "@13800000001" in text and "@ops-lead" in text
        assert ding.body["at"] == {"atMobiles": ["13800000001"], "atUserIds": ["ops-lead"], "isAtAll": True}
        # WeCom: en template, markdown + a text message to @ by mobile (markdown cannot)
        md, ping = h.robots.accepted("wecom")
        assert md.body["msgtype"] == "markdown" and "🔥 FIRING: ComfyUIOutOfMemory" in md.text
        assert "<@wang>" in md.text and "Silence this group](" in md.text and "Started: 2026-11-29" in md.text
        assert ping.body["text"]["mentioned_mobile_list"] == ["13800000002"]
        # Feishu: signed card, red header for critical, keyword present
        fs = h.robots.accepted("feishu")[0]
        assert fs.body["msg_type"] == "interactive" and fs.body["card"]["header"]["template"] == "red"
        assert fs.body["sign"] and fs.body["timestamp"].isdigit() and "显存不足" in fs.text


async def test_resolved_and_warning_messages_do_not_mention(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": DING}) as h:
        assert (await h.post("d", captured("resolved")))[0] == 200
        assert (await h.post("d", payload(alert("SlowQueue", severity="warning"))))[0] == 200
        resolved, warning = h.robots.accepted("dingtalk")
        assert "[恢复 ×2]" in resolved.title and "✅ 告警恢复" in resolved.text
        assert "恢复时间：" in resolved.text and "静默此组" not in resolved.text  # nothing to silence
        for msg in (resolved, warning):
            assert "at" not in msg.body and "@13800000001" not in msg.text


async def test_grouped_alerts_are_summarised_per_alertname(tmp_path: Path) -> None:
    alerts = [alert("ComfyUIOutOfMemory", comfyui=f"gpu-{i}", fingerprint=f"a{i}") for i in range(3)]
    alerts += [
        alert("ComfyUIQueueStuck", severity="warning", error_type="", fingerprint="q1"),
        alert("ComfyUIOutOfMemory", status="resolved", comfyui="gpu-9", fingerprint="r1"),
    ]
    async with harness(tmp_path, {"e": {"type": "wecom", "language": "en"}}) as h:
        assert (await h.post("e", payload(*alerts, group={})))[0] == 200
        text = h.robots.accepted("wecom")[0].text
        summary = "**Summary**: ComfyUIOutOfMemory ×4 (3 firing, 1 resolved), ComfyUIQueueStuck ×1"
        assert summary in text and text.index(summary) < text.index("Instance: gpu-0")


async def test_exporter_failure_details_are_added_and_never_block(tmp_path: Path) -> None:
    failures = [
        {
            "comfyui": "gpu-box-1",
            "prompt_id": "p1",
            "node_id": "3",
            "node_type": "OldNode",
            "exception_type": "RuntimeError",
            "error_type": "oom",
            "message": "old",
            "started_at": 1.0,
            "finished_at": 2.0,
        },
        {
            "comfyui": "gpu-box-1",
            "prompt_id": "p2",
            "node_id": "7",
            "node_type": "KSampler",
            "exception_type": "torch.OutOfMemoryError",
            "error_type": "oom",
            "message": "CUDA out of memory. Tried to allocate 2.00 GiB\nTraceback line two",
            "started_at": 5.0,
            "finished_at": "2026-11-28T02:00:00Z",
        },
        {"comfyui": "other", "node_type": "Wrong", "error_type": "oom", "message": "x", "finished_at": 9e9},
    ]
    mode = {"shape": "list", "delay": 0.0}
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if mode["delay"]:
            await asyncio.wait_for(release.wait(), mode["delay"])
        return web.json_response(failures if mode["shape"] == "list" else {"failures": failures})

    app = web.Application()
    app.add_routes([web.get("/failures", handler)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with harness(
            tmp_path,
            {"d": {"type": "dingtalk"}},
            exporter_failures_url=f"http://127.0.0.1:{port}/failures",
            exporter_failures_timeout=0.3,
        ) as h:
            for shape in ("list", "dict"):
                mode["shape"] = shape
                h.relay._lookup._cache = None  # type: ignore[union-attr]
                assert (await h.post("d", payload(alert(fingerprint=shape))))[0] == 200
                text = h.robots.accepted()[-1].text
                assert (
                    "失败节点：KSampler — torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"
                    in text
                )
                assert "Traceback line two" not in text and "Wrong" not in text and "OldNode" not in text
            mode["delay"] = 5.0  # a hung exporter must not delay or fail delivery
            h.relay._lookup._cache = None  # type: ignore[union-attr]
            t0 = time.monotonic()
            assert (await h.post("d", payload(alert(fingerprint="slow"))))[0] == 200
            assert time.monotonic() - t0 < 1.5
            assert "失败节点" not in h.robots.accepted()[-1].text
    finally:
        release.set()
        await runner.cleanup()


async def test_signature_timestamp_window_is_one_hour(tmp_path: Path) -> None:
    async with FakeRobots() as robots:
        for kind, url in (
            ("dingtalk", robots.dingtalk(secret="SECwindow0001")),
            ("feishu", robots.feishu(secret="window-secret-1")),
        ):
            secret = "SECwindow0001" if kind == "dingtalk" else "window-secret-1"
            target = TargetConfig(
                "t",
                kind,
                Secret(url, "test"),
                Secret(secret, "test"),
                None,
                Mention(),
                "en",
                "UTC",
                RateLimit(20, None, 5),
            )
            async with aiohttp.ClientSession() as session:
                results = {}
                for skew in (-3540, 3540, -3660, 3660):
                    robot = make_robot(target, clock=lambda s=skew: time.time() + s)
                    results[skew] = await robot.send(session, Part("t", "hello"), 2.0)
            assert results[-3540].ok and results[3540].ok, results
            for skew in (-3660, 3660):
                assert results[skew].outcome is Outcome.PERMANENT and results[skew].reason == "signature"


def test_every_robot_body_is_json_with_chinese_unescaped() -> None:
    target = TargetConfig(
        "t",
        "dingtalk",
        Secret("http://x/robot/send?access_token=abc", "t"),
        None,
        None,
        Mention(),
        "zh",
        "UTC",
        RateLimit(20, None, 5),
    )
    req = make_robot(target).prepare(Part("告警", "显存不足"), 0)
    assert "显存不足".encode() in req.body and json.loads(req.body)["markdown"]["text"] == "显存不足"
