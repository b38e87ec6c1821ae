"""Keep secrets (robot URLs, signing secrets, the bearer token) out of logs, errors, journal and metrics.

Two layers, because one slip is enough to leak a webhook URL into a log shipper:
1. secrets travel as :class:`Secret`, whose ``str``/``repr`` never show the value, and code logs only
   target names and :func:`redacted_url` (the URL with its secret values masked);
2. a process-wide log-record factory (and the journal writer) scrubs secret *values* from every text:
   every configured secret (raw, URL-quoted and JSON-escaped forms; of a URL also the values of its
   token parameters and a Feishu/Lark hook id), plus, whether configured or not, the values of
   well-known token parameters (``access_token=``, ``key=``, ``sign=`` …), URL passwords and bearer
   tokens. Target names, URL paths, fingerprints and ids are never masked: only values known or
   marked as secret are, never a string because it merely looks long.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import traceback
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter "secrets" would turn every log line into asterisks
# Query/form parameters whose value is a credential in the robots' and common web APIs.
SECRET_PARAMS = (
    "access_token",
    "auth_token",
    "token",
    "key",
    "sign",
    "signature",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "auth",
)
_PARAM_RE = re.compile(
    r"(?<![A-Za-z0-9_.-])(" + "|".join(SECRET_PARAMS) + r")=([^&\s\"'\\<>#;,)]+)", re.IGNORECASE
)
_USERINFO_RE = re.compile(r"(://[^/\s:@\"']+:)([^@/\s\"']+)@")
_BEARER_RE = re.compile(r"(\bBearer\s+)([A-Za-z0-9._~+/=-]{4,})", re.IGNORECASE)
_HOOK_SEGMENTS = ("hook", "hooks")  # Feishu/Lark: /open-apis/bot/v2/hook/<secret id>


def _url_secrets(value: str) -> set[str]:
    """The secret parts of a URL: token parameter values, a hook id, the userinfo password."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return set()
    out = {v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_PARAMS}
    segments = parts.path.split("/")
    for before, seg in itertools.pairwise(segments):
        if before.lower() in _HOOK_SEGMENTS and seg:
            out.add(seg)
    if parts.password:
        out.add(parts.password)
    return {v for v in out if len(v) >= _MIN_SECRET_LEN}


def scrub_patterns(text: str) -> str:
    """Mask well-known credential shapes (token parameters, URL passwords, bearer tokens)."""
    text = _PARAM_RE.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _USERINFO_RE.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _BEARER_RE.sub(lambda m: f"{m.group(1)}{MASK}", text)


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
        if "://" in value:
            for token in _url_secrets(value):
                forms.update({token, quote(token, safe=""), quote_plus(token)})
        with self._lock:
            for form in forms:
                if form not in self._needles:
                    self._needles.append(form)
            self._needles.sort(key=len, reverse=True)  # mask the longest form first

    def scrub(self, text: str) -> str:
        """Return ``text`` with every registered secret form and credential shape replaced by ``***``."""
        if not text:
            return text
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return scrub_patterns(text)


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


def redacted_url(url: str) -> str:
    """The whole URL, path included, with its secret values (token parameters, hook id) masked."""
    out = url
    for token in sorted(_url_secrets(url), key=len, reverse=True):
        out = out.replace(token, MASK)
    return scrub_patterns(out)


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
