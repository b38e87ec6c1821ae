"""Idempotency: a notification already delivered is answered 200 again without a second robot message.

Alertmanager sends the same notification twice in two normal situations: an HA peer that did not see
the other's notification log in time (a partition, or a peer timeout), and a retry after the relay's
answer was lost (a timeout, the relay killed between the robot's OK and its HTTP answer). Robots have
no idempotency key, so the relay remembers what it delivered.

**Identity** of a notification: the target, Alertmanager's ``groupKey``, the notification's status and,
per alert, its fingerprint, status and ``startsAt``. ``startsAt`` is there so that an alert that
resolved and fired again (same fingerprint, same status as its first notification) is new; Alertmanager
keeps the earliest ``startsAt`` of an alert it merges, so its peers agree on it. Annotations are left
out on purpose: two Prometheus replicas render ``{{ $value }}`` differently.

**Window** (``delivery.duplicate_window_seconds``, default 600 s): long enough to cover Alertmanager's
own retries (they stop at the group's ``group_interval``, 5 min in the shipped config) and an HA peer
sending at its next ``group_interval`` tick; it must stay shorter than every ``repeat_interval`` (4 h
shipped), because a repeat reminder is, by identity, the same notification and must be sent again.

Only a notification delivered **completely** is remembered: one whose robot refused a part is answered
5xx and delivered on Alertmanager's retry (parts already accepted are not sent twice, see delivery).
Delivered identities are kept in the journal (``dedup_key`` of ``delivered`` records), so a restart,
even a kill -9 right after the robot's OK, does not forget them; so are the parts of a split message
that the robot accepted before it refused a later one (``part_delivered``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .payload import Payload

log = logging.getLogger(__name__)
DEFAULT_WINDOW = 600.0
_MARK = '"event":"delivered"'
_PART = '"event":"part_delivered"'


def dedup_key(target: str, payload: Payload) -> str:
    """The identity of one notification to one target (see module docstring)."""
    alerts = sorted(
        (
            a.fingerprint or json.dumps(sorted(a.labels.items()), ensure_ascii=False),
            a.status,
            a.starts_at.isoformat() if a.starts_at else "",
        )
        for a in payload.alerts
    )
    doc = json.dumps([target, payload.group_key, payload.status, alerts], ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8", "replace")).hexdigest()[:32]


@dataclass(frozen=True)
class Delivered:
    at: float  # wall-clock time of the delivery
    ref: str
    messages: tuple[str, ...]


class DeliveredIndex:
    """Identities delivered within the window, filled from the journal at start-up."""

    def __init__(self, window: float, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self._clock = clock
        self._seen: dict[str, Delivered] = {}
        self.parts: dict[str, dict[str, float]] = {}  # target -> {part_key: wall time}, from load()

    @property
    def enabled(self) -> bool:
        return self.window > 0

    def _prune(self, now: float) -> None:
        if len(self._seen) > 256:  # amortised: prune only when it can matter
            self._seen = {k: v for k, v in self._seen.items() if now - v.at < self.window}

    def get(self, key: str) -> Delivered | None:
        entry = self._seen.get(key)
        if entry is None or self._clock() - entry.at >= self.window:
            return None
        return entry

    def add(self, key: str, ref: str, messages: Iterable[str], at: float | None = None) -> None:
        now = self._clock() if at is None else at
        self._prune(now)
        self._seen[key] = Delivered(now, ref, tuple(messages))

    def load(self, journal: Path) -> int:
        """Remember the ``delivered`` records of the journal (and its first backup) inside the window."""
        if not self.enabled:
            return 0
        now, loaded = self._clock(), 0
        for path in (Path(f"{journal}.1"), journal):  # oldest first; rotation may split the window
            try:
                fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
            except OSError:
                continue
            with fh:
                for line in fh:
                    part = _PART in line
                    if not part and (_MARK not in line or '"dedup_key"' not in line):
                        continue
                    try:
                        record = json.loads(line)
                        at = datetime.fromisoformat(record["ts"]).timestamp()
                        key = str(record["part_key" if part else "dedup_key"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line after a crash, or a foreign record
                    if part:
                        self.parts.setdefault(str(record.get("target", "")), {})[key] = at
                    elif key and now - at < self.window:
                        self.add(key, str(record.get("ref", "")), record.get("messages") or (), at)
                        loaded += 1
        if loaded:
            log.info(
                "remembered %d notification(s) delivered in the last %.0fs (duplicates answered 200)",
                loaded,
                self.window,
            )
        return loaded
