"""Optional enrichment: the newest matching failure from the exporter's ``GET /failures``.

An OOM alert that says which node ran out of memory saves a trip to the ComfyUI logs. The lookup is a
nice-to-have, so it times out fast, is cached briefly (a burst of alerts makes one request, not 200),
and every error is swallowed: enrichment must never delay or fail a delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from .payload import Alert, clean_text, short
from .redact import REDACTOR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailureDetail:
    node_type: str
    exception: str  # "ExceptionType: first line of the message"
    prompt_id: str
    node_id: str


def _when(item: dict[str, Any]) -> float:
    """Sort key: finished_at, else started_at; epoch numbers or ISO strings; unknown sorts oldest."""
    for key in ("finished_at", "started_at"):
        value = item.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return float("-inf")


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    return clean_text(str(value)) if value is not None else ""


def extract_failures(data: Any) -> list[dict[str, Any]]:
    """Accept both shapes the exporter may return: a list, or ``{"failures": [...]}``."""
    if isinstance(data, dict):
        data = data.get("failures")
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, dict)]


def match_failure(failures: Iterable[dict[str, Any]], alert: Alert) -> FailureDetail | None:
    """The failure an alert is about: its prompt's, else the newest of its instance and error type.

    An alert without ``error_type`` (ComfyUIDown, a queue backlog) is not about one failure, so it gets
    none: attaching the instance's newest failure named an OOM from minutes earlier as the "failing
    node" of a ComfyUIDown message.
    """
    if not alert.instance or not alert.error_type:
        return None
    prompt = alert.annotations.get("prompt_id", "")
    best, best_when = None, float("-inf")
    for item in failures:
        if _text(item, "comfyui") != alert.instance:
            continue
        if _text(item, "error_type") not in ("", alert.error_type):
            continue
        if prompt and _text(item, "prompt_id") != prompt:
            continue
        when = _when(item)
        if best is None or when > best_when:
            best, best_when = item, when
    if best is None:
        return None
    first_line = next((ln.strip() for ln in _text(best, "message").splitlines() if ln.strip()), "")
    exc_type = _text(best, "exception_type")
    exception = f"{exc_type}: {first_line}" if exc_type and first_line else (exc_type or first_line)
    return FailureDetail(
        _text(best, "node_type")[:100],
        short(exception, 300),
        _text(best, "prompt_id")[:80],
        _text(best, "node_id")[:40],
    )


class FailureLookup:
    """Fetches ``exporter_failures_url`` with a short timeout and a short-lived cache."""

    def __init__(
        self, url: str, timeout: float, session: Callable[[], aiohttp.ClientSession], ttl: float = 5.0
    ) -> None:
        self.url, self.timeout, self._session, self._ttl = url, timeout, session, ttl
        self._cache: tuple[float, list[dict[str, Any]]] | None = None
        self._inflight: asyncio.Future[list[dict[str, Any]]] | None = None

    async def _fetch(self) -> list[dict[str, Any]]:
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with self._session().get(self.url, timeout=timeout) as resp:
                if resp.status != 200:
                    log.info(
                        "exporter failures lookup: HTTP %s; messages go out without node details", resp.status
                    )
                    return []
                return extract_failures(await resp.json(content_type=None))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.info(
                "exporter failures lookup failed (%s); messages go out without node details",
                REDACTOR.scrub(type(exc).__name__),
            )
            return []

    async def failures(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < self._ttl:
            return self._cache[1]
        if self._inflight is None:  # concurrent callers share one request
            self._inflight = asyncio.ensure_future(self._fetch())
        fut = self._inflight
        try:
            items = await asyncio.shield(fut)
        finally:
            if fut.done() and self._inflight is fut:
                self._inflight = None
        self._cache = (time.monotonic(), items)
        return items

    async def details(self, alerts: Iterable[Alert]) -> dict[str, FailureDetail]:
        """``{fingerprint-or-index: detail}`` for firing alerts; ``{}`` on any problem.

        Alerts that carry their own exception (the exporter's event alerts) and alerts without an
        ``error_type`` are not looked up.
        """
        alerts = [
            a
            for a in alerts
            if a.status == "firing"
            and a.instance
            and a.error_type
            and not a.annotations.get("exception_type")
        ]
        if not alerts:
            return {}
        try:
            items = await asyncio.wait_for(self.failures(), timeout=self.timeout + 0.1)
        except Exception:  # enrichment never fails a delivery
            return {}
        out = {}
        for alert in alerts:
            detail = match_failure(items, alert)
            if detail is not None:
                out[alert_key(alert)] = detail
        return out


def alert_key(alert: Alert) -> str:
    """A key for an alert within one payload: its fingerprint, else its sorted labels."""
    return alert.fingerprint or ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
