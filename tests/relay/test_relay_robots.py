"""Robots answer errors with HTTP 200 and a code in the body: every answer is read and classified."""

from __future__ import annotations

import json

import pytest

from comfyui_exporter.relay.config import Mention, RateLimit, TargetConfig
from comfyui_exporter.relay.redact import Secret
from comfyui_exporter.relay.robots import Outcome, Part, make_robot
from comfyui_exporter.relay.robots.dingtalk import dingtalk_sign
from comfyui_exporter.relay.robots.feishu import feishu_sign

T, P = Outcome.TRANSIENT, Outcome.PERMANENT


def robot(kind: str, **kw: object):
    base = dict(
        name="t",
        type=kind,
        url=Secret("https://robot.example/x?access_token=t&key=k", "t"),
        secret=None,
        keyword=None,
        mention=Mention(),
        language="zh",
        timezone="UTC",
        rate_limit=RateLimit(20, None, 5),
    )
    base.update(kw)
    return make_robot(TargetConfig(**base))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "status", "answer", "outcome", "reason"),
    [
        ("dingtalk", 200, {"errcode": 0, "errmsg": "ok"}, Outcome.OK, ""),
        ("dingtalk", 200, {"errcode": 130101, "errmsg": "send too fast"}, T, "robot_rate_limited"),
        (
            "dingtalk",
            200,
            {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc...]"},
            P,
            "signature",
        ),
        (
            "dingtalk",
            200,
            {
                "errcode": 310000,
                "errmsg": "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳"
                "必须都放在调用的网址中",
            },
            P,
            "signature",
        ),
        ("dingtalk", 200, {"errcode": 310000, "errmsg": "keywords not in content"}, P, "keyword"),
        ("dingtalk", 200, {"errcode": 310000, "errmsg": "invalid timestamp"}, P, "signature"),
        ("dingtalk", 200, {"errcode": 310000, "errmsg": "错误描述:ip 1.2.3.4 不在白名单中"}, P, "forbidden"),
        ("dingtalk", 200, {"errcode": 300001, "errmsg": "token is not exist"}, P, "bad_url"),
        ("dingtalk", 200, {"errcode": 460101, "errmsg": "message too long"}, P, "too_large"),
        ("dingtalk", 200, {"errcode": -1, "errmsg": "系统繁忙"}, T, "robot_busy"),
        ("dingtalk", 502, None, T, "http_5xx"),
        ("dingtalk", 429, None, T, "robot_rate_limited"),
        ("dingtalk", 404, None, P, "bad_url"),
        ("dingtalk", 200, "<html>proxy login</html>", T, "invalid_response"),
        ("wecom", 200, {"errcode": 0, "errmsg": "ok"}, Outcome.OK, ""),
        ("wecom", 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, T, "robot_rate_limited"),
        ("wecom", 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, P, "bad_url"),
        (
            "wecom",
            200,
            {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"},
            P,
            "too_large",
        ),
        (
            "feishu",
            200,
            {"StatusCode": 0, "StatusMessage": "success", "code": 0, "msg": "success"},
            Outcome.OK,
            "",
        ),
        ("feishu", 200, {"code": 11232, "msg": "frequency limited"}, T, "robot_rate_limited"),
        (
            "feishu",
            200,
            {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"},
            P,
            "signature",
        ),
        ("feishu", 400, {"code": 19024, "msg": "Key Words Not Found"}, P, "keyword"),
        (
            "feishu",
            200,
            {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"},
            P,
            "bad_url",
        ),
    ],
)
def test_answers_are_classified(
    kind: str, status: int, answer: object, outcome: Outcome, reason: str
) -> None:
    raw = json.dumps(answer).encode() if isinstance(answer, dict) else (answer or "").encode()
    result = robot(kind).interpret(status, raw)
    assert (result.outcome, result.reason) == (outcome, reason), result.detail


def test_signatures_match_the_documented_algorithms() -> None:
    # DingTalk: HMAC-SHA256(key=secret, msg="{ts}\\n{secret}"), base64, URL-encoded.
    assert dingtalk_sign("SECxyz", 1700000000000) == "0PUR1j8g85Xg3vlFV%2FUrEcxXfF5HpCAGzcjrNfyJoyg%3D"
    # Feishu: HMAC-SHA256(key="{ts}\\n{secret}", msg=""), base64.
    assert feishu_sign("abc", 1700000000) == "VIS10b0EBvzzSdFnuk4tznEmK5wHaruvf/WnViv2yR4="


def test_dingtalk_url_carries_timestamp_and_sign_and_keyword_is_ensured() -> None:
    r = robot("dingtalk", secret=Secret("SECxyz", "t"), keyword="告警")
    req = r.prepare(Part("title", "no keyword here"), 1700000000.0)
    assert req.url.endswith("&timestamp=1700000000000&sign=0PUR1j8g85Xg3vlFV%2FUrEcxXfF5HpCAGzcjrNfyJoyg%3D")
    body = json.loads(req.body)
    assert body["markdown"]["text"].startswith("告警 ") and body["markdown"]["title"].startswith("告警 ")


def test_oversize_request_is_refused_locally() -> None:
    import asyncio

    r = robot("wecom")
    result = asyncio.run(r.send(None, Part("t", "字" * 2000), 1.0))  # type: ignore[arg-type]
    assert result.outcome is P and result.reason == "too_large" and not result.counted
