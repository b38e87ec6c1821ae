"""Fake DingTalk, WeCom and Feishu robots on 127.0.0.1, for tests, e2e runs and benchmarks.

They enforce what the real robots enforce, with the real error codes, and answer errors the real way
(HTTP 200 with a non-zero ``errcode``/``code``):

=========  ==========================================================================================
DingTalk   access_token; HMAC-SHA256 ``sign`` + ``timestamp`` (ms) in the query, timestamp within 1 h
           (310000 "sign not match" / "invalid timestamp"); keyword in the text (310000 "keywords not
           in content"); body <= 20,000 bytes (460101); 20 per minute (130101); valid JSON (40035).
WeCom      key; markdown.content <= 4,096 bytes, text.content <= 2,048 (40058); 20 per minute (45009).
Feishu     hook id; ``sign`` + ``timestamp`` (s) in the body, within 1 h (19021); keyword (19024);
           body <= 20 KB (9499); 100 per minute and 5 per second (11232).
=========  ==========================================================================================

Every request is recorded (:attr:`FakeRobots.received`). ``rate_window_scale`` shrinks the rate
windows (0.05 turns a minute into 3 s) to match a relay started with the same scale; ``clock`` is the
robots' wall clock for the signature window. :meth:`FakeRobots.down` simulates an outage.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

SIGNATURE_WINDOW = 3600.0


@dataclass
class Received:
    """One request as a robot saw it, and what it answered."""

    kind: str
    robot: str
    at: float
    size: int
    body: dict[str, Any] | None
    status: int
    code: int
    message: str

    @property
    def accepted(self) -> bool:
        return self.status == 200 and self.code == 0

    @property
    def text(self) -> str:
        return extract_text(self.body) if self.body else ""

    @property
    def title(self) -> str:
        body = self.body or {}
        if "markdown" in body and isinstance(body["markdown"], dict):
            return str(body["markdown"].get("title", ""))
        card = body.get("card") or {}
        return str(((card.get("header") or {}).get("title") or {}).get("content", ""))


def extract_text(body: dict[str, Any]) -> str:
    """The human-visible text of a DingTalk, WeCom or Feishu message body."""
    for key, inner in (("markdown", "text"), ("markdown", "content"), ("text", "content")):
        part = body.get(key)
        if isinstance(part, dict) and isinstance(part.get(inner), str):
            return part[inner]
    card = body.get("card")
    if isinstance(card, dict):
        return "\n".join(str(e.get("content", "")) for e in card.get("elements", []) if isinstance(e, dict))
    content = body.get("content")
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return ""


@dataclass
class FakeRobot:
    kind: str
    ident: str
    secret: str | None = None
    keyword: str | None = None
    windows: list[tuple[int, float]] = field(default_factory=list)  # (limit, seconds)
    hits: deque[float] = field(default_factory=deque)
    inject: list[tuple[int, str]] = field(default_factory=list)  # forced answers for the next requests


def _sign_dingtalk(secret: str, ts: str) -> str:
    digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _sign_feishu(secret: str, ts: str) -> str:
    digest = hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class FakeRobots:
    """All three robot kinds behind one loopback HTTP server."""

    def __init__(self, *, clock: Callable[[], float] = time.time, rate_window_scale: float = 1.0) -> None:
        self.clock = clock
        self.scale = rate_window_scale
        self.robots: dict[str, FakeRobot] = {}
        self.received: list[Received] = []
        self.outage: int | str | None = None  # HTTP status to answer, "hang", or None (up)
        self.on_request: Callable[[Received], None] | None = None  # called before each answer
        self.latency = 0.0  # seconds every request waits before it is handled (a slow robot)
        self._release = asyncio.Event()  # ends "hang" outages (on up() and close())
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/robot/send", self._dingtalk),
                web.post("/cgi-bin/webhook/send", self._wecom),
                web.post("/open-apis/bot/v2/hook/{hook}", self._feishu),
                web.post("/{tail:.*}", self._by_query),  # robots behind a proxy path (``path=``)
            ]
        )
        self.app = app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sock = self._runner.addresses[0]
        self.base_url = f"http://127.0.0.1:{sock[1]}"
        return self.base_url

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRobots:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- robots ----------------------------------------------------------------------------------
    def _add(
        self,
        kind: str,
        ident: str | None,
        secret: str | None,
        keyword: str | None,
        windows: list[tuple[int, float]],
    ) -> FakeRobot:
        robot = FakeRobot(
            kind,
            ident or secrets.token_hex(16),
            secret,
            keyword,
            [(limit, seconds * self.scale) for limit, seconds in windows],
        )
        self.robots[robot.ident] = robot
        return robot

    def dingtalk(
        self,
        secret: str | None = None,
        keyword: str | None = None,
        token: str | None = None,
        path: str = "/robot/send",
    ) -> str:
        """Add a DingTalk robot; returns its webhook URL (with ``access_token``).

        ``path`` puts it behind another path (a corporate proxy's, say): any path with an
        ``access_token`` query reaches the DingTalk fake.
        """
        robot = self._add("dingtalk", token, secret, keyword, [(20, 60.0)])
        return f"{self.base_url}{path}?access_token={robot.ident}"

    def wecom(self, key: str | None = None, path: str = "/cgi-bin/webhook/send") -> str:
        robot = self._add("wecom", key, None, None, [(20, 60.0)])
        return f"{self.base_url}{path}?key={robot.ident}"

    async def _by_query(self, request: web.Request) -> web.Response:
        if "access_token" in request.query:
            return await self._dingtalk(request)
        if "key" in request.query:
            return await self._wecom(request)
        return web.Response(status=404, text="no robot here")

    def feishu(self, secret: str | None = None, keyword: str | None = None, hook: str | None = None) -> str:
        robot = self._add("feishu", hook, secret, keyword, [(100, 60.0), (5, 1.0)])
        return f"{self.base_url}/open-apis/bot/v2/hook/{robot.ident}"

    def down(self, mode: int | str = 502) -> None:
        """Start an outage: answer every request with HTTP ``mode``, or ``"hang"`` without answering."""
        self.outage = mode

    def up(self) -> None:
        self.outage = None
        self._release.set()
        self._release = asyncio.Event()

    def inject(self, url_or_ident: str, code: int, message: str, count: int = 1) -> None:
        """Answer the next ``count`` valid requests to a robot with a robot error code."""
        robot = next(r for r in self.robots.values() if r.ident in url_or_ident)
        robot.inject.extend([(code, message)] * count)

    def accepted(self, kind: str | None = None) -> list[Received]:
        return [r for r in self.received if r.accepted and (kind is None or r.kind == kind)]

    def rejected(self, kind: str | None = None) -> list[Received]:
        return [r for r in self.received if not r.accepted and (kind is None or r.kind == kind)]

    # ---- shared checks ---------------------------------------------------------------------------
    def _over_rate(self, robot: FakeRobot) -> bool:
        now = time.monotonic()
        robot.hits.append(now)
        longest = max(seconds for _, seconds in robot.windows)
        while robot.hits and robot.hits[0] <= now - longest:
            robot.hits.popleft()
        return any(
            sum(1 for t in robot.hits if t > now - seconds) > limit for limit, seconds in robot.windows
        )

    async def _outage(self) -> web.Response | None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.outage == "hang":
            await self._release.wait()
            return web.Response(status=503, text="robot was hanging (fake outage)")
        if isinstance(self.outage, int):
            return web.Response(status=self.outage, text="robot unavailable (fake outage)")
        return None

    def _answer(
        self,
        kind: str,
        robot: str,
        raw: bytes,
        body: dict[str, Any] | None,
        code: int,
        msg: str,
        status: int = 200,
    ) -> web.Response:
        record = Received(kind, robot, self.clock(), len(raw), body, status, code, msg)
        self.received.append(record)
        if self.on_request is not None:
            self.on_request(record)
        if kind == "feishu":
            if code == 0:
                answer = {
                    "StatusCode": 0,
                    "StatusMessage": "success",
                    "code": 0,
                    "data": {},
                    "msg": "success",
                }
            else:
                answer = {"code": code, "data": {}, "msg": msg}
        else:
            answer = {"errcode": code, "errmsg": msg}
        return web.json_response(answer, status=status)

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(raw.decode("utf-8"))  # strict: invalid UTF-8 is a malformed body
        except (UnicodeDecodeError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def _in_window(self, ts: str, scale_ms: bool) -> bool:
        try:
            value = int(ts) / (1000.0 if scale_ms else 1.0)
        except ValueError:
            return False
        return abs(self.clock() - value) <= SIGNATURE_WINDOW

    # ---- handlers --------------------------------------------------------------------------------
    async def _dingtalk(self, request: web.Request) -> web.Response:
        if (down := await self._outage()) is not None:
            return down
        raw = await request.read()
        robot = self.robots.get(request.query.get("access_token", ""))
        if robot is None or robot.kind != "dingtalk":
            return self._answer("dingtalk", "?", raw, None, 300001, "token is not exist")
        a = lambda code, msg, body=None: self._answer("dingtalk", robot.ident, raw, body, code, msg)  # noqa: E731
        if self._over_rate(robot):
            return a(130101, "send too fast, exceed 20 times per minute")
        if len(raw) > 20_000:
            return a(460101, "message too long, exceed 20000 bytes")
        body = self._json(raw)
        if body is None or body.get("msgtype") not in ("text", "markdown", "link", "actionCard", "feedCard"):
            return a(40035, "缺少参数 json", body)
        if robot.secret is not None:
            ts, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
            if not self._in_window(ts, scale_ms=True):
                return a(310000, "invalid timestamp", body)
            if not hmac.compare_digest(sign, _sign_dingtalk(robot.secret, ts)):
                return a(
                    310000,
                    "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
                    body,
                )
        if robot.keyword is not None and robot.keyword not in extract_text(body):
            return a(310000, "keywords not in content", body)
        if robot.inject:
            return a(*robot.inject.pop(0), body)
        return a(0, "ok", body)

    async def _wecom(self, request: web.Request) -> web.Response:
        if (down := await self._outage()) is not None:
            return down
        raw = await request.read()
        robot = self.robots.get(request.query.get("key", ""))
        if robot is None or robot.kind != "wecom":
            return self._answer("wecom", "?", raw, None, 93000, "invalid webhook url, hint: [x]")
        a = lambda code, msg, body=None: self._answer("wecom", robot.ident, raw, body, code, msg)  # noqa: E731
        if self._over_rate(robot):
            return a(45009, "api freq out of limit")
        body = self._json(raw)
        if body is None:
            return a(40035, "invalid parameter: body is not valid json")
        kind = body.get("msgtype")
        limits = {"markdown": 4096, "text": 2048}
        if kind not in limits or not isinstance(body.get(kind), dict):
            return a(40008, "invalid message type", body)
        content = body[kind].get("content")
        if not isinstance(content, str) or not content:
            return a(44004, "empty content", body)
        if len(content.encode("utf-8")) > limits[kind]:
            return a(40058, f"{kind}.content exceed max length {limits[kind]}", body)
        if robot.inject:
            return a(*robot.inject.pop(0), body)
        return a(0, "ok", body)

    async def _feishu(self, request: web.Request) -> web.Response:
        if (down := await self._outage()) is not None:
            return down
        raw = await request.read()
        robot = self.robots.get(request.match_info["hook"])
        if robot is None or robot.kind != "feishu":
            return self._answer(
                "feishu", "?", raw, None, 19001, "param invalid: incoming webhook access token invalid"
            )
        a = lambda code, msg, body=None: self._answer("feishu", robot.ident, raw, body, code, msg)  # noqa: E731
        if self._over_rate(robot):
            return a(11232, "frequency limited psm[lark.oapi.app_platform_runtime]")
        if len(raw) > 20 * 1024:
            return a(9499, "Bad Request: request body too large", None)
        body = self._json(raw)
        if body is None or body.get("msg_type") not in ("text", "post", "interactive", "image", "share_chat"):
            return a(9499, "Bad Request", body)
        if robot.secret is not None:
            ts, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
            if not self._in_window(ts, scale_ms=False) or not hmac.compare_digest(
                sign, _sign_feishu(robot.secret, ts)
            ):
                return a(19021, "sign match fail or timestamp is not within one hour from current time", body)
        if robot.keyword is not None:
            visible = json.dumps(
                {k: v for k, v in body.items() if k not in ("sign", "timestamp")}, ensure_ascii=False
            )
            if robot.keyword not in visible:
                return a(19024, "Key Words Not Found", body)
        if robot.inject:
            return a(*robot.inject.pop(0), body)
        return a(0, "success", body)


def write_relay_config(
    directory: str | Path, targets: dict[str, dict[str, Any]], *, token: str = "", **top: Any
) -> tuple[Path, str]:
    """Write relay.yml plus one secret file per secret; returns (config path, bearer token).

    ``targets`` maps names to target settings where ``url`` and ``secret`` are plain values: they are
    written to files under ``directory/secrets`` and referenced as ``url_file``/``secret_file``, the way
    a deployment would. Other keys (``top``) go to the top level of the config.
    """
    directory = Path(directory)
    secret_dir = directory / "secrets"
    secret_dir.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_urlsafe(24)
    (secret_dir / "relay_token").write_text(token + "\n")
    out_targets = {}
    for name, spec in targets.items():
        spec = dict(spec)
        for key in ("url", "secret"):
            if spec.get(key) is not None:
                path = secret_dir / f"{name}.{key}"
                path.write_text(str(spec.pop(key)) + "\n")
                spec[f"{key}_file"] = str(path)
            else:
                spec.pop(key, None)
        out_targets[name] = spec
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "auth_token_file": str(secret_dir / "relay_token"),
        "journal": {"path": str(directory / "journal.jsonl")},
        "targets": out_targets,
    }
    config.update(top)
    path = directory / "relay.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path, token
