"""Parse and validate a Prometheus exporter-toolkit web config (``--web.config.file``).

The format is the one node_exporter, Prometheus and Alertmanager read (exporter-toolkit
``docs/web-configuration.md``), so an operator reuses the file they already have. Like the toolkit,
an unknown key is an error (a typo must not silently turn TLS or auth off), relative paths are
relative to the file, and the certificate and key are loaded at validation time so a broken pair is
reported before it is served. Errors name file, line and key.

Where Python's ``ssl`` cannot do what Go's ``crypto/tls`` does, the stricter choice is taken and
said so (see ``CLIENT_AUTH``): ``RequireAnyClientCert`` verifies against ``client_ca_file``, and
``curve_preferences``/``http2``/``prefer_server_cipher_suites`` are accepted and validated but left
to OpenSSL's defaults.
"""

from __future__ import annotations

import logging
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .settings import ConfigError
from .yamlnode import Node, load

log = logging.getLogger(__name__)


class WebConfigError(ConfigError):
    """The web config is invalid; the message names file, line and key."""


TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
)
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's crypto/tls CipherSuites() names -> OpenSSL names. TLS 1.3 suites are not configurable in Go
# either; they are accepted and ignored (None).
CIPHERS: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")
# client_auth_type -> (verify mode, needs a CA). Python's ssl has no "request a certificate but do
# not verify it": RequestClientCert does not request one (same access as Go, which ignores it), and
# RequireAnyClientCert verifies it against the CA (stricter than Go; without a CA it is an error).
CLIENT_AUTH: dict[str, tuple[ssl.VerifyMode, bool]] = {
    "": (ssl.CERT_NONE, False),
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_NONE, False),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "RequireClientCert": (ssl.CERT_REQUIRED, True),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, False),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, False),
}
# The toolkit's allow-list of response headers and, where it is an enumeration, their values.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_BCRYPT = re.compile(r"^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


@dataclass(frozen=True)
class TLSServerConfig:
    """tls_server_config, resolved: absolute paths (or inline PEM) and the Python verify mode."""

    cert_file: str | None
    key_file: str | None
    cert_pem: str | None
    key_pem: str | None
    client_ca_file: str | None
    client_ca_pem: str | None
    client_auth_type: str
    verify_mode: ssl.VerifyMode
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion
    ciphers: tuple[str, ...]  # OpenSSL names; empty: OpenSSL's defaults
    client_allowed_sans: tuple[str, ...] | None


@dataclass(frozen=True)
class WebConfig:
    """One validated web config. ``tls`` None means plain HTTP."""

    tls: TLSServerConfig | None = None
    users: dict[str, str] = field(default_factory=dict)  # name -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    http2: bool = True
    rate_interval: float = 0.0  # seconds between requests; 0: no rate limit
    rate_burst: int = 0
    files: tuple[str, ...] = ()  # files this config reads (for change detection)

    def __repr__(self) -> str:  # never print the hashes
        return f"WebConfig(tls={self.tls is not None}, users={sorted(self.users)}, headers={self.headers})"


def parse_go_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``, ``0``) in seconds; ValueError otherwise."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (expected e.g. 1s, 500ms, 1m30s)")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError("empty duration")
    return total


def parse_web_config_text(text: str, source: str, base_dir: Path) -> WebConfig:
    """Validate the YAML text of a web config; file paths in it are relative to ``base_dir``."""
    root = load(text, source)
    top = root.fields(TOP_KEYS)
    files: list[str] = []
    tls = _tls(top["tls_server_config"], base_dir, files) if "tls_server_config" in top else None
    headers: dict[str, str] = {}
    http2 = True
    if "http_server_config" in top:
        http = top["http_server_config"].fields(("http2", "headers"))
        if "http2" in http:
            http2 = http["http2"].as_bool()
        for name, value in http["headers"].items() if "headers" in http else ():
            if name not in HEADERS:
                raise value.error(
                    f"HTTP header {name!r} can not be configured (allowed: {', '.join(HEADERS)})"
                )
            text_value = value.as_str()
            if HEADERS[name] and text_value not in HEADERS[name]:
                raise value.error(f"expected one of {', '.join(HEADERS[name])}, got {text_value!r}")
            if text_value:
                headers[name] = text_value
    users: dict[str, str] = {}
    for name, value in top["basic_auth_users"].items() if "basic_auth_users" in top else ():
        if ":" in name or not name:
            raise value.error("a basic auth user name can not be empty or contain ':'")
        hashed = value.as_str()
        match = _BCRYPT.match(hashed)
        if not match or not 4 <= int(match.group(1)) <= 31:
            raise value.error("not a bcrypt hash (expected $2y$10$… or $2b$…; see docs/security.md)")
        users[name] = hashed
    interval, burst = 0.0, 0
    if "rate_limit" in top:
        rate = top["rate_limit"].fields(("interval", "burst"))
        if "interval" in rate:
            try:
                interval = parse_go_duration(rate["interval"].as_str())
            except ValueError as exc:
                raise rate["interval"].error(str(exc)) from None
        burst = rate["burst"].as_int(minimum=0) if "burst" in rate else 0
        if interval > 0 and burst < 1:
            node = rate.get("burst") or top["rate_limit"]
            raise node.error("burst must be at least 1 when interval is set (0 lets no request through)")
    return WebConfig(tls, users, headers, http2, interval, burst, tuple(files))


def _tls(node: Node, base_dir: Path, files: list[str]) -> TLSServerConfig | None:
    f = node.fields(TLS_KEYS)

    def path(key: str) -> str | None:
        if key not in f or not f[key].as_str():
            return None
        resolved = f[key].path(base_dir)
        try:
            Path(resolved).read_bytes()
        except OSError as exc:
            raise f[key].error(f"cannot read {resolved}: {exc.strerror or exc}") from None
        files.append(resolved)
        return resolved

    def inline(key: str) -> str | None:
        return f[key].as_str() or None if key in f else None

    cert_file, key_file, ca_file = path("cert_file"), path("key_file"), path("client_ca_file")
    cert_pem, key_pem, ca_pem = inline("cert"), inline("key"), inline("client_ca")
    auth = f["client_auth_type"].as_str() if "client_auth_type" in f else ""
    if not any((cert_file, key_file, ca_file, cert_pem, key_pem, ca_pem, auth)):
        return None  # like the toolkit: an empty tls_server_config means plain HTTP
    for a, b in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if a in f and b in f and f[a].as_str() and f[b].as_str():
            raise f[a].error(f"give either {a} or {b}, not both")
    if not (cert_file or cert_pem):
        raise node.error("missing one of cert or cert_file")
    if not (key_file or key_pem):
        raise node.error("missing one of key or key_file")
    if auth not in CLIENT_AUTH:
        raise f["client_auth_type"].error(
            f"invalid ClientAuth {auth!r}; expected one of {', '.join(a for a in CLIENT_AUTH if a)}"
        )
    verify_mode, needs_ca = CLIENT_AUTH[auth]
    has_ca = bool(ca_file or ca_pem)
    if has_ca and auth in ("", "NoClientCert"):
        key = "client_ca_file" if "client_ca_file" in f else "client_ca"
        raise f[key].error("client CA's have been configured without a Client Auth Policy (client_auth_type)")
    if needs_ca and not has_ca:
        raise f["client_auth_type"].error(
            f"{auth} needs client_ca_file here: Python's ssl module cannot accept a client certificate "
            "without verifying it (use RequireAndVerifyClientCert with client_ca_file)"
        )
    if needs_ca:
        log.warning("client_auth_type %s: client certificates are verified against the client CA", auth)
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = f[key].as_str() if key in f else default
        if name not in TLS_VERSIONS:
            raise f[key].error(f"unknown TLS version {name!r}; expected one of {', '.join(TLS_VERSIONS)}")
        versions[key] = TLS_VERSIONS[name]
    if versions["min_version"] > versions["max_version"]:
        raise f["min_version"].error("min_version is above max_version")
    ciphers = []
    for item in f["cipher_suites"].as_list() if "cipher_suites" in f else []:
        name = item.as_str()
        if name not in CIPHERS:
            raise item.error(f"unknown cipher: {name}")
        if CIPHERS[name]:
            ciphers.append(CIPHERS[name])
    for item in f["curve_preferences"].as_list() if "curve_preferences" in f else []:
        if item.as_str() not in CURVES:
            raise item.error(f"unknown curve: {item.as_str()}")
    if "prefer_server_cipher_suites" in f:
        f["prefer_server_cipher_suites"].as_bool()
    sans = None
    if "client_allowed_sans" in f:
        sans = tuple(item.as_str() for item in f["client_allowed_sans"].as_list())
        if verify_mode == ssl.CERT_NONE:
            raise f["client_allowed_sans"].error(
                "needs client_auth_type RequireAndVerifyClientCert (or VerifyClientCertIfGiven): "
                "the SANs of an unverified certificate prove nothing"
            )
    tls = TLSServerConfig(
        cert_file,
        key_file,
        cert_pem,
        key_pem,
        ca_file,
        ca_pem,
        auth or "NoClientCert",
        verify_mode,
        versions["min_version"],
        versions["max_version"],
        tuple(ciphers),
        sans,
    )
    try:
        build_ssl_context(tls)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise node.error(f"cannot load the certificate, key or client CA: {_reason(exc)}") from None
    return tls


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")
    return str(exc)


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted; the web config needs an unencrypted key")


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server-side SSLContext for one validated tls_server_config (built anew on every reload)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.maximum_version = tls.max_version
    if tls.ciphers:
        context.set_ciphers(":".join(tls.ciphers))
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    else:  # inline PEM: ssl only loads from files, so pass them through a private temporary directory
        with tempfile.TemporaryDirectory(prefix="webconfig-") as tmp:
            cert = tls.cert_file or _write(Path(tmp, "cert.pem"), tls.cert_pem or "")
            key = tls.key_file or _write(Path(tmp, "key.pem"), tls.key_pem or "")
            context.load_cert_chain(cert, key, password=_no_password)
    context.verify_mode = tls.verify_mode
    if tls.verify_mode != ssl.CERT_NONE:
        if tls.client_ca_file:
            context.load_verify_locations(cafile=tls.client_ca_file)
        elif tls.client_ca_pem:
            context.load_verify_locations(cadata=tls.client_ca_pem)
        else:  # Go verifies against the system roots when no client CA is given
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context


def _write(path: Path, text: str) -> str:
    path.touch(mode=0o600)
    path.write_text(text, encoding="utf-8")
    return str(path)
