"""Keep secrets (robot URLs, signing secrets, the bearer token) out of logs, errors, journal and metrics.

Two layers, because one slip is enough to leak a webhook URL into a log shipper:
1. secrets travel as :class:`Secret`, whose ``str``/``repr`` never show the value, and code logs only
   target names and :func:`safe_url` (scheme + host);
2. a process-wide log-record factory scrubs every registered secret value (raw, URL-quoted and
   JSON-escaped forms) from every log record, including exception tracebacks and third-party loggers.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter "secrets" would turn every log line into asterisks


class Secret:
    """A secret string that cannot be printed by accident; call :meth:`reveal` where it is really used."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source  # e.g. "file /run/secrets/x" or "env RELAY_URL": safe to show

    def reveal(self) -> str:
        """Return the value; only robot clients and the auth check call this."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<{self.source}>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class Redactor:
    """Registry of live secret values; :meth:`scrub` masks any of them in a text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._needles: list[str] = []

    def register(self, value: str | Secret | None) -> None:
        """Remember a secret (and its encoded forms) so that it is masked everywhere from now on."""
        if isinstance(value, Secret):
            value = value.reveal()
        if not value or len(value) < _MIN_SECRET_LEN:
            return
        forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
        # A URL's query or path part (access_token=..., key=..., hook id) is the secret part of it.
        parts = urlsplit(value) if "://" in value else None
        if parts is not None:
            for piece in (parts.query, parts.path.rsplit("/", 1)[-1]):
                for kv in piece.split("&"):
                    token = kv.split("=", 1)[-1]
                    if len(token) >= 8:
                        forms.update({token, quote(token, safe="")})
        with self._lock:
            for form in forms:
                if form not in self._needles:
                    self._needles.append(form)
            self._needles.sort(key=len, reverse=True)  # mask the longest form first

    def scrub(self, text: str) -> str:
        """Return ``text`` with every registered secret form replaced by ``***``."""
        if not text:
            return text
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text


REDACTOR = Redactor()
_installed = False
_install_lock = threading.Lock()


def safe_url(url: str) -> str:
    """Scheme and host[:port] of a URL: enough to tell robots apart in a log, without the token."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"
    except ValueError:
        return "<invalid url>"


def install_log_redaction() -> None:
    """Scrub secrets from every log record of every logger in this process (idempotent).

    A record factory is used rather than a handler filter because handlers come and go (pytest's
    caplog, a user's logging config) while the factory sees every record before any handler does.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a broken format string must not take the relay down
                message = str(record.msg)
            record.msg, record.args = REDACTOR.scrub(message), None
            if record.exc_info and record.exc_info[0] is not None:
                text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                record.exc_text = REDACTOR.scrub(text)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
