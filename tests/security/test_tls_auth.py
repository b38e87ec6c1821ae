"""The exporter's HTTP server behind a web config: TLS, mTLS, basic auth, headers, rate limit, reload."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import bcrypt
import pytest
import requests

from comfyui_exporter.exposition.webconfig import WebConfigError, WebConfigWatcher

from .conftest import PASSWORD, tls_block, wait_for, write_config
from .pki import PKI


def get(url: str, pki: PKI, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("verify", str(pki.ca.cert))
    return requests.get(url, timeout=5, **kwargs)


def test_tls_serves_metrics_and_refuses_plain_http(tmp_path: Path, pki: PKI, serve) -> None:
    served = serve(write_config(tmp_path / "web.yml", tls_block(pki)))
    response = get(served.url(), pki)
    assert response.status_code == 200 and "security_test_up 1.0" in response.text
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(served.url(scheme="http"), timeout=5)
    # A CA the client does not trust is refused by the client: the server really speaks this cert.
    with pytest.raises(requests.exceptions.SSLError):
        get(served.url(), pki, verify=str(pki.other_ca.cert))


def test_mtls_required_and_refused(tmp_path: Path, pki: PKI, serve) -> None:
    served = serve(write_config(tmp_path / "web.yml", tls_block(pki, "RequireAndVerifyClientCert")))
    ok = get(served.url(), pki, cert=(str(pki.client.cert), str(pki.client.key)))
    assert ok.status_code == 200
    with pytest.raises(requests.exceptions.RequestException):
        get(served.url(), pki)  # no client certificate
    with pytest.raises(requests.exceptions.RequestException):
        get(served.url(), pki, cert=(str(pki.other_client.cert), str(pki.other_client.key)))  # untrusted CA


def test_verify_client_cert_if_given(tmp_path: Path, pki: PKI, serve) -> None:
    served = serve(write_config(tmp_path / "web.yml", tls_block(pki, "VerifyClientCertIfGiven")))
    assert get(served.url(), pki).status_code == 200
    assert get(served.url(), pki, cert=(str(pki.client.cert), str(pki.client.key))).status_code == 200
    with pytest.raises(requests.exceptions.RequestException):
        get(served.url(), pki, cert=(str(pki.other_client.cert), str(pki.other_client.key)))


def test_client_allowed_sans(tmp_path: Path, pki: PKI, serve) -> None:
    text = tls_block(pki, "RequireAndVerifyClientCert") + "  client_allowed_sans: [someone-else]\n"
    served = serve(write_config(tmp_path / "web.yml", text))
    with pytest.raises(requests.exceptions.RequestException):
        get(served.url(), pki, cert=(str(pki.client.cert), str(pki.client.key)))
    write_config(tmp_path / "web.yml", text.replace("someone-else", "scraper"))
    wait_for(lambda: served.watcher.reloads == 1, what="reload")
    assert get(served.url(), pki, cert=(str(pki.client.cert), str(pki.client.key))).status_code == 200


def test_basic_auth_right_wrong_missing(tmp_path: Path, pki: PKI, serve, hashed: str) -> None:
    config = tls_block(pki) + f"basic_auth_users:\n  prometheus: {hashed}\n"
    served = serve(write_config(tmp_path / "web.yml", config))
    assert get(served.url(), pki, auth=("prometheus", PASSWORD)).status_code == 200
    wrong = get(served.url(), pki, auth=("prometheus", PASSWORD + "x"))
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert get(served.url(), pki, auth=("nobody", PASSWORD)).status_code == 401
    assert get(served.url(), pki).status_code == 401
    assert get(served.url("/-/healthy"), pki).status_code == 401  # every path, as in the toolkit
    garbage = get(served.url(), pki, headers={"Authorization": "Basic !!!not-base64"})
    assert garbage.status_code == 401
    bearer = get(served.url(), pki, headers={"Authorization": "Bearer " + PASSWORD})
    assert bearer.status_code == 401


def test_basic_auth_over_plain_http_and_headers(tmp_path: Path, serve, hashed: str) -> None:
    config = (
        f"basic_auth_users:\n  alice: {hashed}\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    )
    served = serve(write_config(tmp_path / "web.yml", config))
    response = requests.get(served.url(), auth=("alice", PASSWORD), timeout=5)
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "deny"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    refused = requests.get(served.url(), timeout=5)
    assert refused.status_code == 401 and refused.headers["X-Frame-Options"] == "deny"


def test_only_failures_protected(tmp_path: Path, serve, hashed: str) -> None:
    """--web.failures-require-auth: /metrics stays open for Prometheus, /failures needs a login."""
    served = serve(write_config(tmp_path / "web.yml", f"basic_auth_users:\n  ops: {hashed}\n"), {"/failures"})
    assert requests.get(served.url("/metrics"), timeout=5).status_code == 200
    assert requests.get(served.url("/failures"), timeout=5).status_code == 401
    assert requests.get(served.url("/failures?comfyui=x"), auth=("ops", "nope"), timeout=5).status_code == 401
    ok = requests.get(served.url("/failures"), auth=("ops", PASSWORD), timeout=5)
    assert ok.status_code == 200 and ok.json() == {"failures": []}


def test_protected_paths_need_users(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="must be protected by a login"):
        WebConfigWatcher(write_config(tmp_path / "web.yml", "{}\n"), protected_paths={"/failures"})


def test_bcrypt_result_is_cached(tmp_path: Path) -> None:
    """A real-cost hash (10): the first check costs tens of ms, repeated scrapes almost nothing."""
    costly = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    watcher = WebConfigWatcher(write_config(tmp_path / "web.yml", f"basic_auth_users:\n  p: {costly}\n"))
    import base64

    header = "Basic " + base64.b64encode(f"p:{PASSWORD}".encode()).decode()
    started = time.perf_counter()
    assert watcher.authorize("/metrics", header)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(20):
        assert watcher.authorize("/metrics", header)
    repeated = (time.perf_counter() - started) / 20
    assert first > 0.02 and repeated < first / 10, (first, repeated)
    # A changed password in the file is a new cache key: the old password stops working.
    newer = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
    write_config(tmp_path / "web.yml", f"basic_auth_users:\n  p: {newer}\n")
    assert watcher.check()
    assert not watcher.authorize("/metrics", header)


def test_reload_on_change_and_broken_file_keeps_old(
    tmp_path: Path, pki: PKI, serve, hashed: str, caplog
) -> None:
    path = write_config(tmp_path / "web.yml", tls_block(pki))
    served = serve(path)
    assert get(served.url(), pki).status_code == 200
    write_config(path, tls_block(pki) + f"basic_auth_users:\n  prometheus: {hashed}\n")
    wait_for(lambda: served.watcher.reloads == 1, what="reload")
    assert get(served.url(), pki).status_code == 401
    assert get(served.url(), pki, auth=("prometheus", PASSWORD)).status_code == 200
    # A broken file is logged and the previous config stays in force (auth still required).
    write_config(path, tls_block(pki) + "basic_auth_users:\n  prometheus: not-a-hash\n")
    wait_for(lambda: served.watcher.last_error is not None, what="error noticed")
    assert "basic_auth_users.prometheus: not a bcrypt hash" in served.watcher.last_error
    assert "keeping the previous one" in caplog.text
    assert get(served.url(), pki).status_code == 401
    assert get(served.url(), pki, auth=("prometheus", PASSWORD)).status_code == 200
    # Removing TLS needs a restart: refused, still TLS.
    write_config(path, f"basic_auth_users:\n  prometheus: {hashed}\n")
    wait_for(lambda: "needs a restart" in (served.watcher.last_error or ""), what="tls switch refused")
    assert get(served.url(), pki, auth=("prometheus", PASSWORD)).status_code == 200


def test_certificate_rotated_in_place(tmp_path: Path, pki: PKI, serve) -> None:
    """certbot-style renewal: the cert/key files change, the web config does not."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(pki.other_client.cert.read_bytes())  # a cert the client won't trust for this host
    key.write_bytes(pki.other_client.key.read_bytes())
    served = serve(
        write_config(tmp_path / "web.yml", "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    )
    with pytest.raises(requests.exceptions.SSLError):
        get(served.url(), pki)
    key.write_bytes(pki.server.key.read_bytes())
    cert.write_bytes(pki.server.cert.read_bytes())
    wait_for(lambda: served.watcher.reloads >= 1 and served.watcher.last_error is None, what="cert reload")
    assert get(served.url(), pki).status_code == 200


def test_slow_client_does_not_block_others(tmp_path: Path, pki: PKI, serve) -> None:
    """A client that connects and never sends a ClientHello must not stall the accept loop."""
    served = serve(write_config(tmp_path / "web.yml", tls_block(pki)))
    idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
    try:
        started = time.monotonic()
        assert get(served.url(), pki).status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in idle:
            sock.close()


def test_garbage_instead_of_tls_is_dropped(tmp_path: Path, pki: PKI, serve) -> None:
    served = serve(write_config(tmp_path / "web.yml", tls_block(pki)))
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
        assert b"security_test_up" not in answer
    assert get(served.url(), pki).status_code == 200


def test_tls_versions(tmp_path: Path, pki: PKI, serve) -> None:
    served = serve(
        write_config(
            tmp_path / "web.yml",
            tls_block(pki, extra="").replace(
                "tls_server_config:\n", "tls_server_config:\n  min_version: TLS13\n"
            ),
        )
    )
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock, pytest.raises(ssl.SSLError):
        context.wrap_socket(sock, server_hostname="127.0.0.1")
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"


def test_rate_limit(tmp_path: Path, serve) -> None:
    served = serve(write_config(tmp_path / "web.yml", "rate_limit:\n  interval: 1h\n  burst: 2\n"))
    codes = [requests.get(served.url(), timeout=5).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
