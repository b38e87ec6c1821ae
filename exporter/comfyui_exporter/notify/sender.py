"""Posting event alerts to every configured Alertmanager, on threads of their own.

``submit`` only appends to a bounded queue per Alertmanager and returns: the poll and websocket
threads that count a failure, and the scrapes, never wait on Alertmanager. Each Alertmanager has
its own worker (a slow one delays nobody else, like Prometheus's notifier): it takes what is
queued after a short linger (a burst becomes one POST), posts it, and on a connection error,
a timeout, a 5xx or a 429 keeps the batch and retries with exponential backoff. What cannot be
queued (queue full: the oldest are dropped) or is refused for good (4xx) is counted as dropped,
never silently lost. Counts are read at scrape time by ``notify.metrics``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ..config.settings import AlertmanagerConfig

log = logging.getLogger(__name__)

BACKOFF_START = 0.25
BACKOFF_CAP = 5.0  # after an outage, the queued alerts go out within seconds of Alertmanager being back


def display_url(url: str) -> str:
    """The ``alertmanager`` label value: the URL without credentials, query or trailing slash."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclass
class SenderStats:
    sent: int = 0  # alerts Alertmanager accepted
    failed: int = 0  # alerts in POSTs that failed (they are retried)
    dropped: int = 0  # alerts given up: the queue overflowed or Alertmanager refused them (4xx)
    up: int = 0  # 1 while the last POST succeeded
    queued: int = 0
    coalesced: int = 0  # queued alerts replaced by a newer version of themselves before sending


def make_alertmanager_session(config: AlertmanagerConfig) -> requests.Session:
    """Auth and TLS as Prometheus's ``alertmanagers`` block has them; secrets were read from files."""
    session = requests.Session()
    session.trust_env = False  # never a proxy from the environment for 127.0.0.1 / cluster URLs
    session.headers["User-Agent"] = "comfyui-exporter"
    session.headers["Content-Type"] = "application/json"
    if config.basic_auth_username is not None:
        session.auth = (config.basic_auth_username, config.basic_auth_password or "")
    elif config.bearer_token:
        session.headers["Authorization"] = f"Bearer {config.bearer_token}"
    if config.tls.insecure_skip_verify:
        session.verify = False
    elif config.tls.ca_file:
        session.verify = config.tls.ca_file
    if config.tls.cert_file:
        session.cert = (
            (config.tls.cert_file, config.tls.key_file) if config.tls.key_file else config.tls.cert_file
        )
    return session


class AlertmanagerWorker:
    """One Alertmanager: its queue, its thread, its counts."""

    def __init__(
        self,
        url: str,
        config: AlertmanagerConfig,
        linger: float = 0.02,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.name = display_url(url)
        self.config = config
        self.linger = linger
        self.stats = SenderStats()
        self._queue: deque[dict[str, Any]] = deque()
        self._inflight = 0  # the first _inflight queued alerts are being posted
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._rng = rng or random.Random()
        self._session = make_alertmanager_session(config)
        self._thread: threading.Thread | None = None

    def submit(self, alerts: Sequence[dict[str, Any]]) -> None:
        with self._cond:
            for alert in alerts:
                if self._replace_queued(alert):
                    continue
                if len(self._queue) >= self.config.queue_capacity:
                    self.stats.dropped += 1
                    if len(self._queue) <= self._inflight:  # all of it is being posted: drop the new one
                        continue
                    del self._queue[self._inflight]  # the oldest that is not in flight
                self._queue.append(alert)
            self.stats.queued = len(self._queue)
            self._cond.notify()

    def _replace_queued(self, alert: dict[str, Any]) -> bool:
        """A newer version of an alert still waiting (a folded burst's count) replaces it in place:
        Alertmanager keeps only the latest of one label set anyway. Never one that is in flight."""
        labels = alert.get("labels")
        for i in range(len(self._queue) - 1, self._inflight - 1, -1):
            if self._queue[i].get("labels") == labels:
                self._queue[i] = alert
                self.stats.coalesced += 1
                return True
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"alertmanager:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._session.close()

    def _take(self) -> list[dict[str, Any]]:
        with self._cond:
            while not self._queue and not self._stop.is_set():
                self._cond.wait()
        if self.linger and not self._stop.is_set():
            self._stop.wait(self.linger)  # let the rest of a burst arrive: one POST for it
        with self._cond:
            n = min(len(self._queue), self.config.batch_size)
            self._inflight = n
            return [self._queue[i] for i in range(n)]

    def _done(self, n: int) -> None:
        with self._cond:
            for _ in range(min(n, len(self._queue))):
                self._queue.popleft()
            self._inflight = 0
            self.stats.queued = len(self._queue)

    def _run(self) -> None:
        delay = BACKOFF_START
        while not self._stop.is_set():
            batch = self._take()
            if not batch:
                continue
            outcome = self.post(batch)
            if outcome == "retry":
                self._stop.wait(delay * (0.8 + 0.4 * self._rng.random()))
                delay = min(delay * 2, BACKOFF_CAP)
                continue
            delay = BACKOFF_START
            self._done(len(batch))
            continue

    def post(self, batch: list[dict[str, Any]]) -> str:
        """One POST: ``"ok"``, ``"refused"`` (4xx, dropped) or ``"retry"``."""
        try:
            response = self._session.post(self.url, data=json.dumps(batch), timeout=self.config.timeout)
        except requests.RequestException as exc:
            return self._failed(batch, type(exc).__name__)
        if response.status_code < 300:
            if not self.stats.up:
                log.info("Alertmanager %s accepts event alerts", self.name)
            self.stats.sent += len(batch)
            self.stats.up = 1
            return "ok"
        if response.status_code == 429 or response.status_code >= 500:
            return self._failed(batch, f"HTTP {response.status_code}")
        self.stats.failed += len(batch)
        self.stats.dropped += len(batch)
        self.stats.up = 1  # it answers; it refuses these alerts
        log.error(
            "Alertmanager %s refused %d alert(s) with HTTP %s: %s",
            self.name,
            len(batch),
            response.status_code,
            response.text[:300].replace("\n", " "),
        )
        return "refused"

    def _failed(self, batch: list[dict[str, Any]], why: str) -> str:
        if self.stats.up or self.stats.failed == 0:
            log.warning(
                "Alertmanager %s unreachable (%s); event alerts are queued and retried", self.name, why
            )
        self.stats.failed += len(batch)
        self.stats.up = 0
        return "retry"


class AlertSender:
    """Fans event alerts out to every configured Alertmanager (a cluster gets each alert on every peer)."""

    def __init__(
        self,
        config: AlertmanagerConfig,
        worker: Callable[[str, AlertmanagerConfig], AlertmanagerWorker] | None = None,
    ) -> None:
        make = worker or (lambda url, cfg: AlertmanagerWorker(url, cfg))
        self.workers = [make(url, config) for url in config.urls]

    def submit(self, alerts: Sequence[dict[str, Any]]) -> None:
        if alerts:
            for worker in self.workers:
                worker.submit(alerts)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.stop(max(0.0, deadline - time.monotonic()))
