"""DingTalk custom robot (自定义机器人): markdown, HMAC-SHA256 signature in the query, keyword, @mentions.

Limits enforced by DingTalk: a 20,000-byte body, 20 messages per minute (then a 10-minute ban,
errcode 130101), signature timestamps within one hour, and the keyword (if that security option is
chosen) somewhere in the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import quote_plus

from .base import Outcome, Part, Request, Robot, SendResult, dumps, with_keyword

BODY_LIMIT = 20_000


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


class DingTalk(Robot):
    kind = "dingtalk"

    def prepare(self, part: Part, now: float) -> Request:
        t = self.target
        title, text = part.title, part.text
        at: dict[str, object] = {}
        if part.mention:
            handles = [f"@{m}" for m in t.mention.mobiles] + [f"@{u}" for u in t.mention.user_ids]
            if handles:
                text = f"{text}\n\n{' '.join(handles)}"  # the @ in the text is what DingTalk highlights
            at = {
                "atMobiles": list(t.mention.mobiles),
                "atUserIds": list(t.mention.user_ids),
                "isAtAll": t.mention.all_on_critical,
            }
        body: dict[str, object] = {
            "msgtype": "markdown",
            "markdown": {"title": with_keyword(title, t.keyword), "text": with_keyword(text, t.keyword)},
        }
        if at:
            body["at"] = at
        url = t.url.reveal()
        if t.secret is not None:
            ts = int(now * 1000)
            url += (
                "&" if "?" in url else "?"
            ) + f"timestamp={ts}&sign={dingtalk_sign(t.secret.reveal(), ts)}"
        data = dumps(body)
        return Request(url, data, len(data), BODY_LIMIT)

    def classify(self, code: int, message: str) -> SendResult:
        low = message.lower()
        if code == 130101:
            return SendResult(
                Outcome.TRANSIENT,
                "robot_rate_limited",
                " (over 20 messages/min; DingTalk mutes the robot for 10 minutes)",
            )
        if code == 310000:
            if "keyword" in low or "关键词" in message or "关键字" in message:
                return SendResult(
                    Outcome.PERMANENT,
                    "keyword",
                    " (the robot's keyword security is on: set keyword: in the target)",
                )
            if "timestamp" in low or ("时间戳" in message and "签名" not in message):
                return SendResult(
                    Outcome.PERMANENT, "signature", " (timestamp rejected: is this host's clock right?)"
                )
            if re.search(r"\bip\b", low) or "whitelist" in low or "白名单" in message:
                return SendResult(
                    Outcome.PERMANENT, "forbidden", " (this host's IP is not in the robot's allow list)"
                )
            return SendResult(
                Outcome.PERMANENT,
                "signature",
                " (signature rejected: check secret_file holds the robot's SEC… secret)",
            )
        if code in (300001, 300005, 400102):
            return SendResult(Outcome.PERMANENT, "bad_url", " (access_token unknown: check url_file)")
        if code == 460101:
            return SendResult(Outcome.PERMANENT, "too_large", "")
        if code == -1:
            return SendResult(Outcome.TRANSIENT, "robot_busy", "")
        return SendResult(Outcome.PERMANENT, "robot_error", "")
