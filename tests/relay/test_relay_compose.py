"""Composition fallbacks, exercised with a robot whose limit is tiny."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from relay_helpers import alert, payload

from comfyui_exporter.relay.compose import TRUNCATED, _largest, compose_merged, compose_single
from comfyui_exporter.relay.config import Mention, RateLimit, TargetConfig
from comfyui_exporter.relay.payload import parse_payload
from comfyui_exporter.relay.redact import Secret
from comfyui_exporter.relay.render import Renderer
from comfyui_exporter.relay.robots import Part, Request
from comfyui_exporter.relay.robots.dingtalk import DingTalk


class TinyDingTalk(DingTalk):
    """DingTalk framing with a small limit, so every fallback path is reachable."""

    limit = 1500

    def prepare(self, part: Part, now: float) -> Request:
        req = super().prepare(part, now)
        return Request(req.url, req.body, req.measured, self.limit)


def target(**kw: object) -> TargetConfig:
    base = dict(
        name="t",
        type="dingtalk",
        url=Secret("http://x/robot/send?access_token=t", "t"),
        secret=None,
        keyword=None,
        mention=Mention(mobiles=("13800000000",)),
        language="zh",
        timezone="UTC",
        rate_limit=RateLimit(20, None, 5),
    )
    base.update(kw)
    return TargetConfig(**base)  # type: ignore[arg-type]


def test_fallbacks_keep_every_part_within_the_limit() -> None:
    robot, renderer = TinyDingTalk(target()), Renderer()
    cases = {
        "fits": payload(alert()),
        "split": payload(alert(description="显存" * 400)),
        "fewer details": payload(*(alert(comfyui=f"g{i}", fingerprint=str(i)) for i in range(40))),
    }
    for name, body in cases.items():
        parts = compose_single(parse_payload(json.dumps(body)), target(), robot, renderer, "r", None, 2)
        assert 1 <= len(parts) <= 2, name
        assert all(robot.prepare(p, 0).fits for p in parts), name
        assert parts[0].mention and not any(p.mention for p in parts[1:])
    parts = compose_single(
        parse_payload(json.dumps(cases["fewer details"])), target(), robot, renderer, "r", None, 2
    )
    assert "ComfyUIOutOfMemory ×40" in parts[0].text and "条告警未展开" in "".join(p.text for p in parts)


def test_last_resort_truncation_is_marked() -> None:
    robot, renderer = TinyDingTalk(target()), Renderer()
    robot.limit = 700
    group = {f"label{i}": "很长的分组标签值" * 3 for i in range(8)}  # a frame too big to leave room
    body = parse_payload(json.dumps(payload(alert(), group=group)))
    parts = compose_single(body, target(), robot, renderer, "r", None, 1)
    assert len(parts) == 1 and parts[0].text.endswith(TRUNCATED) and robot.prepare(parts[0], 0).fits


def test_merged_is_always_one_part() -> None:
    robot, renderer = TinyDingTalk(target(mention=Mention())), Renderer()
    bodies = [
        parse_payload(json.dumps(payload(alert(comfyui=f"g{i}", fingerprint=str(i))))) for i in range(30)
    ]
    parts = compose_merged(bodies, target(mention=Mention()), robot, renderer, "r")
    assert len(parts) == 1 and robot.prepare(parts[0], 0).fits
    assert "30 条通知" in parts[0].text and "另有" in parts[0].text


@given(st.integers(0, 5), st.integers(0, 80), st.integers(-1, 85), st.none() | st.integers(-5, 90))
def test_largest_finds_the_boundary_from_any_guess(
    lo: int, width: int, answer: int, guess: int | None
) -> None:
    hi = lo + width
    calls: list[int] = []

    def ok(k: int) -> bool:
        calls.append(k)
        return k <= answer

    expected = min(answer, hi) if answer >= lo else None
    assert _largest(lo, hi, ok, guess) == expected
    assert all(lo <= k <= hi for k in calls)
