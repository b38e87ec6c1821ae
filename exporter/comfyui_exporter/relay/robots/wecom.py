"""WeCom group robot (企业微信群机器人): markdown to the ``send?key=`` URL, no signature.

Limits enforced by WeCom: markdown content 4,096 bytes, text content 2,048 bytes, 20 messages per
minute (errcode 45009). Markdown can @ a member only by user id (``<@userid>``); mentioning by mobile
number or @all needs a separate ``text`` message, which :meth:`WeCom.mention_part` provides.
"""

from __future__ import annotations

from .base import Outcome, Part, Request, Robot, SendResult, dumps

MARKDOWN_LIMIT = 4096
TEXT_LIMIT = 2048


class WeCom(Robot):
    kind = "wecom"

    def prepare(self, part: Part, now: float) -> Request:
        t = self.target
        if part.kind == "mention":
            mobiles = list(t.mention.mobiles) + (["@all"] if t.mention.all_on_critical else [])
            content = part.text
            body = {"msgtype": "text", "text": {"content": content, "mentioned_mobile_list": mobiles}}
            return Request(t.url.reveal(), dumps(body), len(content.encode("utf-8")), TEXT_LIMIT)
        content = part.text
        if part.mention and t.mention.user_ids:
            content = f"{content}\n{' '.join(f'<@{u}>' for u in t.mention.user_ids)}"
        body = {"msgtype": "markdown", "markdown": {"content": content}}
        return Request(t.url.reveal(), dumps(body), len(content.encode("utf-8")), MARKDOWN_LIMIT)

    def mention_part(self, title: str) -> Part | None:
        m = self.target.mention
        if not (m.mobiles or m.all_on_critical):
            return None
        return Part(title=title, text=title[:200], mention=True, kind="mention")

    def classify(self, code: int, message: str) -> SendResult:
        if code == 45009:
            return SendResult(Outcome.TRANSIENT, "robot_rate_limited", " (over 20 messages/min)")
        if code in (93000, 93004, 93008, 40014, 40001):
            return SendResult(Outcome.PERMANENT, "bad_url", " (webhook key invalid: check url_file)")
        if code == 40058 or "exceed" in message.lower():
            return SendResult(Outcome.PERMANENT, "too_large", "")
        if code == -1:
            return SendResult(Outcome.TRANSIENT, "robot_busy", "")
        return SendResult(Outcome.PERMANENT, "robot_error", "")
