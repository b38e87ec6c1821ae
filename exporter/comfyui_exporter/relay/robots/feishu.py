"""Feishu/Lark custom bot (自定义机器人): interactive card with markdown, signature in the body.

Limits enforced by Feishu: request body 20 KB, 100 messages per minute and 5 per second (code 11232),
signature timestamp within one hour (code 19021 on a bad signature), keyword security (code 19024).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from .base import Outcome, Part, Request, Robot, SendResult, dumps, with_keyword

BODY_LIMIT = 20_000  # Feishu says "20 KB"; stay under both readings (20,000 and 20,480)
_HEADER = {"critical": "red", "firing": "orange", "resolved": "green", "merged": "blue"}


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key=f"{timestamp_s}\\n{secret}", msg=b"")): Feishu keys the HMAC, no message."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Feishu(Robot):
    kind = "feishu"

    def prepare(self, part: Part, now: float) -> Request:
        t = self.target
        text = part.text
        if part.mention:
            tags = [f"<at id={u}></at>" for u in t.mention.user_ids]
            if t.mention.all_on_critical:
                tags.append("<at id=all></at>")
            if tags:
                text = f"{text}\n{' '.join(tags)}"
        title = part.title
        if t.keyword and t.keyword not in title and t.keyword not in text:
            title = with_keyword(title, t.keyword)
        body: dict[str, object] = {}
        if t.secret is not None:
            ts = int(now)
            body.update({"timestamp": str(ts), "sign": feishu_sign(t.secret.reveal(), ts)})
        body.update(
            {
                "msg_type": "interactive",
                "card": {
                    "config": {"wide_screen_mode": True},
                    "header": {
                        "title": {"tag": "plain_text", "content": title},
                        "template": _HEADER.get(part.tone, "orange"),
                    },
                    "elements": [{"tag": "markdown", "content": text}],
                },
            }
        )
        data = dumps(body)
        return Request(t.url.reveal(), data, len(data), BODY_LIMIT)

    def classify(self, code: int, message: str) -> SendResult:
        if code == 11232:
            return SendResult(Outcome.TRANSIENT, "robot_rate_limited", " (over 100/min or 5/s)")
        if code == 19021:
            return SendResult(
                Outcome.PERMANENT,
                "signature",
                " (signature or timestamp rejected: check secret_file and this host's clock)",
            )
        if code == 19024:
            return SendResult(
                Outcome.PERMANENT,
                "keyword",
                " (the bot's keyword security is on: set keyword: in the target)",
            )
        if code == 19022:
            return SendResult(Outcome.PERMANENT, "forbidden", " (this host's IP is not allowed by the bot)")
        if code in (19001, 19002):
            return SendResult(Outcome.PERMANENT, "bad_url", " (hook id unknown: check url_file)")
        if "large" in message.lower() or "size" in message.lower():
            return SendResult(Outcome.PERMANENT, "too_large", "")
        if code == -1:
            return SendResult(Outcome.TRANSIENT, "robot_busy", "")
        return SendResult(Outcome.PERMANENT, "robot_error", "")
