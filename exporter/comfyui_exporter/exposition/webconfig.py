"""TLS, basic auth and response headers from an exporter-toolkit web config, reloaded while running.

``WebConfigWatcher(path)`` holds the current :class:`WebConfig` and polls the file (and the
certificate, key and CA files it names) for changes, so a renewed certificate or a new password
takes effect without a restart, as with node_exporter. A broken new file is logged and the old
config stays in force: a typo must never open the endpoint or take it down. Switching between
plain HTTP and TLS needs a restart (the listener is one or the other), as in the toolkit.

The servers use it through hooks: ``authorize(path, header)``, ``headers()``, ``allow_request()``
and ``current_ssl_context()``; ``webserve`` adapts them to the stdlib server and to aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..config.settings import ConfigError
from ..config.web import WebConfig, WebConfigError, build_ssl_context, parse_web_config_text

__all__ = ["WebConfig", "WebConfigError", "WebConfigWatcher", "load_web_config"]

log = logging.getLogger(__name__)

# bcrypt of "fakepassword" (the toolkit's): unknown users cost as much as known ones, so response
# times do not tell which user names exist.
_FAKE_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
_CACHE_SIZE = 1024


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file; ``WebConfigError`` names file, line and key."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read the web config: {exc.strerror or exc}") from None
    return _parse(raw, Path(path))


def _parse(raw: bytes, path: Path) -> WebConfig:
    try:
        return parse_web_config_text(raw.decode("utf-8"), str(path), path.resolve().parent)
    except UnicodeDecodeError:
        raise WebConfigError(f"{path}: not UTF-8 text") from None
    except WebConfigError:
        raise
    except ConfigError as exc:
        raise WebConfigError(str(exc)) from None


def _referenced_files(raw: bytes, base: Path) -> list[Path]:
    """Files a (possibly invalid) config names, read leniently: their changes must trigger a reload."""
    try:
        doc = yaml.safe_load(raw)
        tls = doc.get("tls_server_config") or {}
        names = [tls.get(k) for k in ("cert_file", "key_file", "client_ca_file")]
    except Exception:
        return []
    return [base / n for n in names if isinstance(n, str) and n]


class WebConfigWatcher:
    """The live web config of one server; see the module docstring.

    ``protected_paths`` None: with ``basic_auth_users`` every path needs a login (the toolkit's
    behaviour). A set (e.g. ``{"/failures"}``): only those paths need one, and the config must then
    have users, or nobody could ever read them.
    """

    def __init__(
        self,
        path: str | Path,
        protected_paths: Iterable[str] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.protected_paths = frozenset(protected_paths) if protected_paths is not None else None
        self.poll_interval = poll_interval
        raw, fingerprint = self._read()
        config = _parse(raw, self.path)
        self._check_compatible(config, None)
        self._config = config
        self._context = build_ssl_context(config.tls) if config.tls else None
        self.tls_enabled = config.tls is not None
        self._fingerprint = fingerprint
        self._failed_fingerprint: bytes | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # bcrypt is CPU-heavy: one at a time, as in the toolkit
        self._tokens = float(config.rate_burst)
        self._tokens_at = time.monotonic()
        self._rate_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading and reloading ------------------------------------------------------------------------
    @property
    def config(self) -> WebConfig:
        return self._config

    def _read(self) -> tuple[bytes, bytes]:
        """The file's bytes and a fingerprint of it plus the files it names (certs rotate in place)."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise WebConfigError(f"{self.path}: cannot read the web config: {exc.strerror or exc}") from None
        digest = hashlib.sha256(raw)
        for file in _referenced_files(raw, self.path.resolve().parent):
            digest.update(b"\0" + str(file).encode())
            try:
                digest.update(hashlib.sha256(file.read_bytes()).digest())
            except OSError as exc:
                digest.update(f"unreadable:{exc.errno}".encode())
        return raw, digest.digest()

    def _check_compatible(self, new: WebConfig, old: WebConfig | None) -> None:
        if new.users:
            try:
                import bcrypt  # noqa: F401
            except ImportError:
                raise WebConfigError(f"{self.path}: basic_auth_users needs the bcrypt package") from None
        if self.protected_paths and not new.users:
            raise WebConfigError(
                f"{self.path}: basic_auth_users is empty, but {', '.join(sorted(self.protected_paths))} "
                "must be protected by a login (add users, or drop the flag that protects them)"
            )
        if old is not None and (new.tls is None) != (old.tls is None):
            raise WebConfigError(
                f"{self.path}: tls_server_config was {'added' if new.tls else 'removed'}; switching between "
                "HTTP and HTTPS needs a restart"
            )

    def check(self) -> bool:
        """Reload if the file or a file it names changed; True when a new config was applied.

        Never raises: a broken file is logged once (per distinct content) and the old config stays.
        """
        try:
            raw, fingerprint = self._read()
        except WebConfigError as exc:
            return self._failed(None, exc)
        if fingerprint in (self._fingerprint, self._failed_fingerprint):
            return False
        try:
            config = _parse(raw, self.path)
            self._check_compatible(config, self._config)
            context = build_ssl_context(config.tls) if config.tls else None
        except (ConfigError, OSError, ssl.SSLError, ValueError) as exc:
            return self._failed(fingerprint, exc)
        with self._rate_lock:
            if config.rate_burst != self._config.rate_burst:
                self._tokens = float(config.rate_burst)
        self._config, self._context = config, context
        self._fingerprint, self._failed_fingerprint, self.last_error = fingerprint, None, None
        self.reloads += 1
        log.info(
            "web config %s reloaded: %s, %d basic auth user(s)",
            self.path,
            "TLS" if config.tls else "plain HTTP",
            len(config.users),
        )
        return True

    def _failed(self, fingerprint: bytes | None, exc: Exception) -> bool:
        if (fingerprint is None or fingerprint != self._failed_fingerprint) and str(exc) != self.last_error:
            log.error("web config not reloaded, keeping the previous one: %s", exc)
        self._failed_fingerprint = fingerprint
        self.last_error = str(exc)
        return False

    def start(self) -> None:
        """Poll for changes every ``poll_interval`` seconds in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="web-config", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.check()
            except Exception:  # a bug here must not stop reloading for good
                log.exception("web config check failed")

    # -- hooks for the servers ---------------------------------------------------------------------------
    def current_ssl_context(self) -> ssl.SSLContext | None:
        """The context for the next connection (None when the config has no TLS)."""
        return self._context

    def ssl_context(self) -> ssl.SSLContext | None:
        """One context object whose connections always use the current config (for aiohttp/asyncio)."""
        if not self.tls_enabled:
            return None
        context = _ReloadingSSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.watcher = self
        return context

    def headers(self) -> dict[str, str]:
        """Response headers from http_server_config.headers."""
        return dict(self._config.headers)

    def allow_request(self) -> bool:
        """rate_limit as a token bucket (False: answer 429); always True without a rate_limit."""
        config = self._config
        if config.rate_interval <= 0:
            return True
        with self._rate_lock:
            now = time.monotonic()
            self._tokens = min(
                float(config.rate_burst), self._tokens + (now - self._tokens_at) / config.rate_interval
            )
            self._tokens_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def needs_auth(self, path: str) -> bool:
        if not self._config.users:
            return False
        if self.protected_paths is None:
            return True
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.protected_paths)

    def authorize(self, path: str, authorization: str | None) -> bool:
        """Whether a request for ``path`` with this ``Authorization`` header may proceed.

        bcrypt costs ~100 ms per check, so results are cached under a digest of user, hash and
        password (never the password itself): a scrape every few seconds stays cheap, and a changed
        hash in the file is a new key.
        """
        if not self.needs_auth(path):
            return True
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed, known = _FAKE_HASH, False
        for name, value in self._config.users.items():
            if hmac.compare_digest(user, name.encode()):
                hashed, known = value.encode(), True
        key = hashlib.sha256(b"\0".join((user, hashed, password))).digest()
        with self._cache_lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached and known
        with self._bcrypt_lock:
            ok = _bcrypt_check(password, hashed) and known
        with self._cache_lock:
            self._cache[key] = ok
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return ok

    def client_cert_allowed(self, peercert: dict[str, Any] | None) -> bool:
        """client_allowed_sans: does the verified client certificate name an allowed SAN?"""
        tls = self._config.tls
        if tls is None or tls.client_allowed_sans is None:
            return True
        if not peercert:
            return False
        allowed = set(tls.client_allowed_sans)
        for kind, value in peercert.get("subjectAltName", ()):
            if value in allowed or (
                kind == "IP Address" and _normal_ip(value) in {_normal_ip(a) for a in allowed}
            ):
                return True
        return False


class _ReloadingSSLContext(ssl.SSLContext):
    """asyncio wraps each connection with ``wrap_bio``; delegate that to the current context."""

    watcher: WebConfigWatcher

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):  # type: ignore[no-untyped-def]
        context = self.watcher.current_ssl_context()
        assert context is not None
        return context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def wrap_socket(self, sock, *args, **kwargs):  # type: ignore[no-untyped-def]
        context = self.watcher.current_ssl_context()
        assert context is not None
        return context.wrap_socket(sock, *args, **kwargs)


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _bcrypt_check(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # imported here: only servers with basic_auth_users need it

    try:
        # bcrypt only ever used the first 72 bytes; bcrypt >= 5 raises instead of truncating.
        return bool(bcrypt.checkpw(password[:72], hashed))
    except ValueError:
        return False


def _normal_ip(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text
