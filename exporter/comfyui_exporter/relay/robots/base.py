"""What every group robot has in common: framing a request, the size check, reading the answer.

Robots answer most errors with HTTP 200 and a non-zero ``errcode``/``code`` in the body, so the body is
always read. Each answer is classified as OK, TRANSIENT (retry: network, 5xx, robot busy or rate
limited) or PERMANENT (retrying the same request cannot help: bad signature, missing keyword, unknown
URL) with a short ``reason`` used as a metric label and a ``detail`` for the log.
"""

from __future__ import annotations

import enum
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from ..config import TargetConfig
from ..redact import REDACTOR

MAX_ANSWER_BYTES = 64 * 1024
SIZE_PROBE_TIME = 1_700_000_000.0  # a fixed time for size checks: signatures have a fixed length


class Outcome(enum.Enum):
    OK = "ok"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SendResult:
    """The outcome of one request to a robot."""

    outcome: Outcome
    reason: str = ""  # metric label of a failure; see metrics.REASONS
    detail: str = ""  # human explanation, safe to log (scrubbed)
    http_status: int | None = None
    counted: bool = True  # False when the robot never saw the request (connection refused)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass(frozen=True)
class Part:
    """One robot message: a rendered message or a slice of one."""

    title: str
    text: str
    tone: str = "firing"  # critical | firing | resolved | merged: colours the Feishu card header
    mention: bool = False  # add the target's mentions (first part of a critical message)
    kind: str = "markdown"  # markdown, or "mention" for WeCom's separate @mobile text message


@dataclass(frozen=True)
class Request:
    """A ready-to-send request plus the size the robot's limit applies to."""

    url: str
    body: bytes
    measured: int  # the bytes the robot's size limit applies to
    limit: int

    @property
    def fits(self) -> bool:
        return self.measured <= self.limit


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON: ``ensure_ascii=False`` keeps Chinese at 3 bytes instead of 6 (``\\uXXXX``)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Robot(ABC):
    """A robot client: frames and signs requests, checks sizes, reads the robot's answers."""

    kind: ClassVar[str]

    def __init__(self, target: TargetConfig, clock: Callable[[], float] = time.time) -> None:
        self.target = target
        self._clock = clock

    @abstractmethod
    def prepare(self, part: Part, now: float) -> Request:
        """Build the signed request for ``part`` at wall-clock time ``now``."""

    @abstractmethod
    def classify(self, code: int, message: str) -> SendResult:
        """Classify a non-zero robot error code."""

    def mention_part(self, title: str) -> Part | None:
        """An extra message needed to @-mention (WeCom markdown cannot @ by mobile); usually None."""
        return None

    def fits(self, part: Part) -> bool:
        return self.prepare(part, SIZE_PROBE_TIME).fits

    @staticmethod
    def code_of(answer: Any) -> tuple[int | None, str]:
        """(code, message) from a robot answer; code None if the answer has none."""
        if not isinstance(answer, dict):
            return None, ""
        for key, msg_key in (("errcode", "errmsg"), ("code", "msg"), ("StatusCode", "StatusMessage")):
            code = answer.get(key)
            if isinstance(code, int) and not isinstance(code, bool):
                return code, str(answer.get(msg_key, ""))
        return None, ""

    def interpret(self, status: int, raw: bytes) -> SendResult:
        """Turn an HTTP status + body into a :class:`SendResult` (robots say "error" in a 200)."""
        try:
            answer = json.loads(raw.decode("utf-8", "replace")) if raw else None
        except ValueError:
            answer = None
        code, message = self.code_of(answer)
        detail = REDACTOR.scrub(f"HTTP {status}, {self.kind} code {code}: {message[:300]}")
        if status >= 500:
            return SendResult(Outcome.TRANSIENT, "http_5xx", detail, status)
        if status == 429:
            return SendResult(Outcome.TRANSIENT, "robot_rate_limited", detail, status)
        if code == 0 and 200 <= status < 300:
            return SendResult(Outcome.OK, "", detail, status)
        if code is not None and code != 0:
            result = self.classify(code, message)
            return SendResult(result.outcome, result.reason, detail + result.detail, status)
        if status == 404:
            return SendResult(Outcome.PERMANENT, "bad_url", detail + " (check the robot URL)", status)
        if 400 <= status < 500:
            return SendResult(Outcome.PERMANENT, "http_4xx", detail, status)
        # 2xx without a code: not a robot answer (a proxy page?). Unknown whether it was delivered.
        return SendResult(Outcome.TRANSIENT, "invalid_response", detail, status)

    async def send(self, session: aiohttp.ClientSession, part: Part, timeout: float) -> SendResult:
        """POST one message; never raises for network trouble, never sends an oversize message."""
        request = self.prepare(part, self._clock())
        if not request.fits:
            return SendResult(
                Outcome.PERMANENT,
                "too_large",
                f"refused to send {request.measured} bytes > {self.kind} limit {request.limit}",
                counted=False,
            )
        try:
            async with session.post(
                request.url,
                data=request.body,
                allow_redirects=False,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=max(timeout, 0.05)),
            ) as resp:
                raw = await resp.content.read(MAX_ANSWER_BYTES)
                return self.interpret(resp.status, raw)
        except aiohttp.ClientConnectorError as exc:  # never reached the robot: not counted
            return SendResult(
                Outcome.TRANSIENT, "network", REDACTOR.scrub(f"cannot connect: {exc.os_error}"), counted=False
            )
        except TimeoutError:
            return SendResult(Outcome.TRANSIENT, "timeout", f"no answer within {timeout:.1f}s")
        except aiohttp.ClientError as exc:
            return SendResult(Outcome.TRANSIENT, "network", REDACTOR.scrub(f"{type(exc).__name__}: {exc}"))


def with_keyword(text: str, keyword: str | None) -> str:
    """Robots with keyword security drop messages lacking it; make sure it is there."""
    if keyword and keyword not in text:
        return f"{keyword} {text}"
    return text
