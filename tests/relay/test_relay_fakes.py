"""The fake robots enforce the real robots' rules; otherwise the relay tests could not fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import quote_plus

import aiohttp
import pytest
from _pytest.outcomes import Failed, Skipped
from relay_am import alertmanager_binary

from comfyui_exporter.relay.testing import FakeRobots


def md(text: str) -> dict:
    return {"msgtype": "markdown", "markdown": {"title": "t", "text": text}}


async def post(s: aiohttp.ClientSession, url: str, body: object, raw: bytes | None = None) -> dict:
    async with s.post(
        url, data=raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    ) as r:
        assert r.status == 200  # errors come back as HTTP 200 with a code, like the real robots
        return await r.json()


def ding_signed(url: str, secret: str, ts_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{ts_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return f"{url}&timestamp={ts_ms}&sign={quote_plus(base64.b64encode(digest).decode())}"


async def test_dingtalk_rules() -> None:
    async with FakeRobots() as robots, aiohttp.ClientSession() as s:
        url = robots.dingtalk(secret="SECfake", keyword="告警")
        now = int(time.time() * 1000)
        assert (await post(s, url, md("告警 x")))["errcode"] == 310000  # unsigned
        assert (await post(s, ding_signed(url, "SECwrong", now), md("告警 x")))["errmsg"].startswith(
            "sign not match"
        )
        assert (await post(s, ding_signed(url, "SECfake", now - 3_700_000), md("告警")))[
            "errmsg"
        ] == "invalid timestamp"
        assert (await post(s, ding_signed(url, "SECfake", now), md("no kw")))[
            "errmsg"
        ] == "keywords not in content"
        assert (await post(s, ding_signed(url, "SECfake", now), md("告警" + "x" * 20_000)))[
            "errcode"
        ] == 460101
        assert (await post(s, ding_signed(url, "SECfake", now), None, b"\xff\xfe"))["errcode"] == 40035
        assert (await post(s, url.replace("access_token=", "access_token=x"), md("告警")))[
            "errcode"
        ] == 300001
        codes = [
            (await post(s, ding_signed(url, "SECfake", now), md("告警 ok")))["errcode"] for _ in range(20)
        ]
        assert codes.count(0) == 14 and codes.count(130101) == 6  # 20 per minute, every request counts
        assert len(robots.accepted()) == 14 and robots.received[-1].code == 130101


async def test_wecom_rules() -> None:
    async with FakeRobots() as robots, aiohttp.ClientSession() as s:
        url = robots.wecom()
        ok = {"msgtype": "markdown", "markdown": {"content": "字" * 1365}}  # 4095 bytes
        assert (await post(s, url, ok))["errcode"] == 0
        big = {"msgtype": "markdown", "markdown": {"content": "字" * 1366}}  # 4098 bytes
        assert (await post(s, url, big))["errcode"] == 40058
        text = {"msgtype": "text", "text": {"content": "x" * 2049}}
        assert (await post(s, url, text))["errcode"] == 40058
        codes = [(await post(s, url, ok))["errcode"] for _ in range(20)]
        assert codes.count(45009) == 3
        assert (await post(s, url.replace("key=", "key=zz"), ok))["errcode"] == 93000


async def test_feishu_rules() -> None:
    async with FakeRobots() as robots, aiohttp.ClientSession() as s:
        url = robots.feishu(secret="fs", keyword="KW")
        ts = str(int(time.time()))
        sign = base64.b64encode(hmac.new(f"{ts}\nfs".encode(), b"", hashlib.sha256).digest()).decode()
        card = {"msg_type": "text", "content": {"text": "KW hi"}, "timestamp": ts, "sign": sign}
        assert (await post(s, url, card))["code"] == 0
        assert (await post(s, url, {**card, "sign": "bad"}))["code"] == 19021
        assert (await post(s, url, {**card, "content": {"text": "hi"}}))["code"] == 19024
        assert (await post(s, url, {**card, "content": {"text": "KW" + "x" * 21_000}}))["code"] == 9499
        codes = [(await post(s, url, card))["code"] for _ in range(6)]
        assert 11232 in codes  # 5 per second


def test_missing_alertmanager_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("os.access", lambda *a: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped):
        alertmanager_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed):
        alertmanager_binary()
