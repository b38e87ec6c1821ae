"""Web config validation: the toolkit's format, its errors, and every error naming key and line."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from comfyui_exporter.config.web import parse_go_duration
from comfyui_exporter.exposition.webconfig import WebConfigError, load_web_config

from .pki import PKI

HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(WebConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_empty_file_is_plain_http_without_auth(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.tls is None and config.users == {} and config.headers == {}


def test_node_exporter_style_file(tmp_path: Path, pki: PKI) -> None:
    config = load(
        tmp_path,
        f"""
tls_server_config:
  cert_file: {pki.server.cert}
  key_file: {pki.server.key}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {pki.ca.cert}
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: true
  curve_preferences: [X25519, CurveP256]
  client_allowed_sans: [scraper]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Strict-Transport-Security: max-age=31536000; includeSubDomains
basic_auth_users:
  prometheus: {HASH}
rate_limit:
  interval: 100ms
  burst: 20
""",
    )
    assert config.tls is not None
    assert config.tls.verify_mode == ssl.CERT_REQUIRED
    assert config.tls.ciphers == ("ECDHE-ECDSA-AES128-GCM-SHA256",)
    assert config.tls.client_allowed_sans == ("scraper",)
    assert config.headers["X-XSS-Protection"] == "1"  # YAML's int 1 is the header text "1"
    assert config.users == {"prometheus": HASH}
    assert (config.rate_interval, config.rate_burst) == (0.1, 20)
    assert config.http2 is False
    assert str(pki.server.cert) in config.files


def test_relative_paths_are_relative_to_the_file(tmp_path: Path, pki: PKI) -> None:
    (tmp_path / "server.crt").write_bytes(pki.server.cert.read_bytes())
    (tmp_path / "server.key").write_bytes(pki.server.key.read_bytes())
    config = load(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    assert config.tls is not None and config.tls.cert_file == str(tmp_path / "server.crt")


def test_inline_cert_and_key(tmp_path: Path, pki: PKI) -> None:
    cert = pki.server.cert.read_text().replace("\n", "\n    ")
    key = pki.server.key.read_text().replace("\n", "\n    ")
    config = load(tmp_path, f"tls_server_config:\n  cert: |\n    {cert}\n  key: |\n    {key}\n")
    assert config.tls is not None and config.tls.cert_pem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tls_server_config:\n  cert_filse: server.crt\n",
            "web.yml:2: tls_server_config.cert_filse: unknown key (did you mean cert_file?)",
        ),
        (
            "basic_auth_user:\n  a: b\n",
            "web.yml:1: basic_auth_user: unknown key (did you mean basic_auth_users?)",
        ),
        (
            "http_server_config:\n  headers:\n    Server: nginx\n",
            "web.yml:3: http_server_config.headers.Server: HTTP header 'Server' can not be configured",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "web.yml:3: http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin",
        ),
        ("basic_auth_users:\n  alice: hunter2\n", "web.yml:2: basic_auth_users.alice: not a bcrypt hash"),
        (
            f"basic_auth_users:\n  alice: {HASH}\n  alice: {HASH}\n",
            "web.yml:3: basic_auth_users.alice: key given twice",
        ),
        ("rate_limit:\n  interval: 5 seconds\n", "web.yml:2: rate_limit.interval: invalid duration"),
        ("rate_limit:\n  interval: 1s\n", "burst must be at least 1"),
        (
            "tls_server_config:\n  client_auth_type: NoClientCert\n",
            "tls_server_config: missing one of cert or cert_file",
        ),
        ("tls_server_config: [a]\n", "web.yml:1: tls_server_config: expected a mapping"),
        ("tls_server_config:\n  cert_file: [\n", "web.yml:3: not valid YAML"),
    ],
)
def test_errors_name_the_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_tls_errors(tmp_path: Path, pki: PKI) -> None:
    base = f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.server.key}\n"
    assert "tls_server_config.client_auth_type: invalid ClientAuth 'Sometimes'" in error_of(
        tmp_path, base + "  client_auth_type: Sometimes\n"
    )
    assert "without a Client Auth Policy" in error_of(tmp_path, base + f"  client_ca_file: {pki.ca.cert}\n")
    assert "RequireAnyClientCert needs client_ca_file" in error_of(
        tmp_path, base + "  client_auth_type: RequireAnyClientCert\n"
    )
    assert "tls_server_config.cipher_suites[0]: unknown cipher: TLS_INVENTED" in error_of(
        tmp_path, base + "  cipher_suites: [TLS_INVENTED]\n"
    )
    assert "tls_server_config.curve_preferences[1]: unknown curve: P999" in error_of(
        tmp_path, base + "  curve_preferences: [X25519, P999]\n"
    )
    assert "tls_server_config.min_version: unknown TLS version 'TLS14'" in error_of(
        tmp_path, base + "  min_version: TLS14\n"
    )
    assert "min_version is above max_version" in error_of(
        tmp_path, base + "  min_version: TLS13\n  max_version: TLS12\n"
    )
    assert "client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert" in error_of(
        tmp_path, base + "  client_allowed_sans: [x]\n"
    )
    mismatched = f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.client.key}\n"
    assert "cannot load the certificate, key or client CA" in error_of(tmp_path, mismatched)
    missing = f"tls_server_config:\n  cert_file: {tmp_path / 'nope.crt'}\n  key_file: {pki.server.key}\n"
    assert "web.yml:2: tls_server_config.cert_file: cannot read " in error_of(tmp_path, missing)
    both = base + f"  cert: {pki.server.cert.read_text()!r}\n"
    assert "give either cert or cert_file" in error_of(tmp_path, both)


def test_require_any_client_cert_with_a_ca_verifies(tmp_path: Path, pki: PKI) -> None:
    config = load(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pki.server.cert}\n  key_file: {pki.server.key}\n"
        f"  client_auth_type: RequireAnyClientCert\n  client_ca_file: {pki.ca.cert}\n",
    )
    assert config.tls is not None and config.tls.verify_mode == ssl.CERT_REQUIRED


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read the web config"):
        load_web_config(tmp_path / "missing.yml")


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "1d", "s", "1s2"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)
