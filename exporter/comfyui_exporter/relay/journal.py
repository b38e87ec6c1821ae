"""Append-only JSON-lines journal: every notification is written (and flushed) before delivery is tried.

The journal is the relay's memory of what Alertmanager handed over: a notification that could not be
delivered, was rejected, or was folded into a merged message can always be found and replayed from it.
Size-based rotation (``path``, ``path.1`` … ``path.N``) bounds disk use.

A journal that cannot be written (disk full) does not stop delivery: phones ringing matters more than
the record. The failure is counted and logged so that it can be alerted on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import JournalConfig
from .redact import REDACTOR

log = logging.getLogger(__name__)


class Journal:
    """Thread-safe JSONL writer with size rotation; :meth:`write` never raises."""

    def __init__(
        self,
        config: JournalConfig,
        on_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._on_error = on_error
        self._clock = clock
        self._file: Any = None
        self._size = 0
        self._last_error_log = 0.0
        self._open()

    @property
    def path(self) -> Path:
        return self._config.path

    def _open(self) -> None:
        try:
            self._config.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._config.path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived handle
            self._size = self._file.tell()
        except OSError as exc:
            self._file = None
            self._failed(exc)

    def reconfigure(self, config: JournalConfig) -> None:
        """Apply a reloaded journal config; reopens the file only if the path changed."""
        with self._lock:
            reopen = config.path != self._config.path
            self._config = config
            if reopen:
                self._close_locked()
                self._open()

    def write(self, event: str, **fields: Any) -> None:
        """Append one record ``{"ts", "event", **fields}`` and flush it (fsync if configured)."""
        record = {
            "ts": datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **fields,
        }
        line = REDACTOR.scrub(json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")))
        try:
            nbytes = len(line.encode("utf-8")) + 1
        except UnicodeEncodeError:  # lone surrogates from a hostile payload: keep them, escaped
            line = REDACTOR.scrub(json.dumps(record, ensure_ascii=True, default=str, separators=(",", ":")))
            nbytes = len(line) + 1
        data = line + "\n"
        with self._lock:
            try:
                if self._file is None:
                    self._open()
                    if self._file is None:
                        return
                if self._size and self._size + nbytes > self._config.max_bytes:
                    self._rotate_locked()
                self._file.write(data)
                self._file.flush()
                if self._config.fsync:
                    os.fsync(self._file.fileno())
                self._size += nbytes
            except OSError as exc:
                self._failed(exc)

    def _rotate_locked(self) -> None:
        self._close_locked()
        path, keep = self._config.path, self._config.backups
        if keep == 0:
            path.unlink(missing_ok=True)
        else:
            Path(f"{path}.{keep}").unlink(missing_ok=True)
            for i in range(keep - 1, 0, -1):
                src = Path(f"{path}.{i}")
                if src.exists():
                    src.replace(f"{path}.{i + 1}")
            if path.exists():
                path.replace(f"{path}.1")
        self._open()

    def _failed(self, exc: OSError) -> None:
        if self._on_error is not None:
            self._on_error()
        now = time.monotonic()
        if now - self._last_error_log > 10.0:  # a full disk must not also flood the log
            self._last_error_log = now
            log.error(
                "journal %s cannot be written (%s); delivery continues without a record",
                self._config.path,
                exc.strerror or exc,
            )

    def _close_locked(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            self._size = 0

    def close(self) -> None:
        with self._lock:
            self._close_locked()


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """All records of one journal file (no rotated backups), for tests and replay tooling."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(json.loads(line))
    return out
