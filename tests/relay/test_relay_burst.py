"""Rate limits and sizes: a burst never exceeds the robot's allowance and loses nothing; oversize
messages are split or cut so the robot never rejects them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from relay_helpers import alert, harness, payload

# 0.05: the robots' one-minute window becomes 3 s on both sides (relay limiter and fake robots).
SCALE = 0.05
MINUTE = 60 * SCALE


async def test_burst_of_200_alerts_in_a_minute_sends_at_most_20_messages(tmp_path: Path) -> None:
    target = {
        "ops-dingtalk": {
            "type": "dingtalk",
            "robot": {"secret": "SECburst000001", "keyword": "告警"},
            "keyword": "告警",
        }
    }
    async with harness(tmp_path, target, scale=SCALE) as h:
        t0 = time.monotonic()

        async def one(i: int) -> tuple[int, dict]:
            await asyncio.sleep(i * (0.7 * MINUTE) / 200)  # 200 alerts within 70% of a robot minute
            group = {"alertname": "ComfyUIBurst", "comfyui": f"node-{i:03d}"}
            return await h.post(
                "ops-dingtalk",
                payload(alert("ComfyUIBurst", comfyui=f"node-{i:03d}", fingerprint=f"b{i}"), group=group),
            )

        results = await asyncio.gather(*(one(i) for i in range(200)))
        elapsed = time.monotonic() - t0
        assert [s for s, _ in results] == [200] * 200, [a for s, a in results if s != 200][:3]
        accepted = h.robots.accepted()
        assert not h.robots.rejected(), [(r.code, r.message) for r in h.robots.rejected()]  # no 130101
        assert 1 <= len(accepted) <= 20
        texts = "\n".join(r.text for r in accepted)
        delivered = {r["id"]: r for r in h.events("delivered")}
        in_text = journaled_only = 0
        for i, (_, answer) in enumerate(results):
            record = delivered[answer["id"]]  # every notification has its own delivered record
            assert f"ref {record['ref']}" in texts  # ...naming a message the robot accepted
            if f"node-{i:03d}" in texts:
                in_text += 1
            else:
                assert record["merged_with"] > 1  # listed only as a count, journaled as merged
                journaled_only += 1
        merged = sum(1 for r in delivered.values() if r["merged_with"])
        print(
            f"\nburst: 200 alerts -> {len(accepted)} robot messages ({merged} notifications merged; "
            f"{in_text} listed in text, {journaled_only} counted + journaled) in {elapsed:.2f}s "
            f"(robot minute compressed to {MINUTE:.0f}s)"
        )
        assert merged >= 150


async def test_wecom_chinese_and_emoji_are_split_at_character_boundaries(tmp_path: Path) -> None:
    family = "👨\u200d👩\u200d👧"
    description = ("节点执行失败：显存不足，请检查工作流 " + family + " 🔥👍🏽🇨🇳 e\u0301 ") * 100  # ~10 KB
    async with harness(tmp_path, {"w": {"type": "wecom"}}, scale=SCALE) as h:
        assert (await h.post("w", payload(alert(description=description))))[0] == 200
        parts = h.robots.accepted("wecom")
        assert 2 <= len(parts) <= 3 and not h.robots.rejected()
        for p in parts:
            content = p.body["markdown"]["content"]
            assert len(content.encode("utf-8")) <= 4096
            assert content[0] not in "\u200d\u0301\ufe0f" and not content.endswith("\u200d")
        bodies = [p.body["markdown"]["content"].split("\n\n", 1)[1] for p in parts]  # drop "(i/n)"
        assert " ".join(description.split()) in "".join(bodies)  # the whole description arrived


async def test_oversize_notifications_never_reach_a_robot_too_big(tmp_path: Path) -> None:
    many = [
        alert(
            "ComfyUIOutOfMemory",
            comfyui=f"gpu-{i:03d}",
            fingerprint=f"m{i}",
            summary="显存不足 " * 20,
            description="描述 " * 40,
        )
        for i in range(300)
    ]
    huge = payload(alert(description="巨大的描述🔥" * 6000))  # ~110 KB of text in one line
    targets = {"d": {"type": "dingtalk"}, "f": {"type": "feishu"}, "w": {"type": "wecom", "language": "en"}}
    async with harness(tmp_path, targets, scale=SCALE) as h:
        huge_texts: dict[str, str] = {}
        for name in targets:
            for body in (payload(*many, group={"alertname": "ComfyUIOutOfMemory"}), huge):
                before = len(h.robots.accepted())
                status, answer = await h.post(name, body)
                assert status == 200 and len(answer["messages"]) <= 3, answer
                huge_texts[name] = "".join(r.text for r in h.robots.accepted()[before:])
        assert not h.robots.rejected(), [(r.kind, r.code, r.message) for r in h.robots.rejected()]
        for r in h.robots.accepted():
            assert r.size <= 20_000 if r.kind != "wecom" else len(r.text.encode()) <= 4096
        ding = [r.text for r in h.robots.accepted("dingtalk")]
        assert any("ComfyUIOutOfMemory ×300" in t for t in ding)  # the summary always survives
        assert any("条告警未展开" in t for t in ding)  # and says how many details were left out
        for text in huge_texts.values():  # the giant description is shortened, not dropped
            assert "巨大的描述🔥" * 50 in text and "…" in text


async def test_merged_message_fits_even_for_thousands_of_alerts(tmp_path: Path) -> None:
    async with harness(
        tmp_path, {"w": {"type": "wecom"}}, scale=SCALE, delivery={"deadline_seconds": 8.0}
    ) as h:
        h.relay.workers["w"].limiter._tokens = 0.0  # bucket empty: everything queued gets merged
        bodies = [
            payload(*(alert(f"A{i % 7}", comfyui=f"n{i}-{j}", fingerprint=f"{i}-{j}") for j in range(20)))
            for i in range(50)
        ]
        results = await asyncio.gather(*(h.post("w", b) for b in bodies))
        assert all(s == 200 for s, _ in results)
        merged = [r for r in h.robots.accepted() if "merged" in r.text.lower() or "合并" in r.text]
        assert merged and all(len(r.text.encode()) <= 4096 for r in h.robots.accepted())
        assert any("…" in r.text and "relay journal" in r.text for r in merged)
