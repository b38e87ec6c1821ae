"""The real Prometheus scrapes the exporter's server through mTLS + basic auth with its own tls_config.

One Prometheus, two jobs against the same target: the right password gives ``up == 1``, a wrong one
``up == 0`` (so the test also proves auth is enforced for a Go client, not only for requests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from comfyui_exporter.sim.testing import free_port

from .conftest import PASSWORD, tls_block, write_config
from .pki import PKI

PROMETHEUS = "/usr/bin/prometheus"


def prometheus_binary() -> str:
    binary = PROMETHEUS if os.access(PROMETHEUS, os.X_OK) else shutil.which("prometheus")
    if binary is None:
        reason = f"{PROMETHEUS} not installed (apt-get install --no-install-recommends prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def test_prometheus_scrapes_through_mtls_and_basic_auth(tmp_path: Path, pki: PKI, serve, hashed: str) -> None:
    binary = prometheus_binary()
    web = tls_block(pki, "RequireAndVerifyClientCert") + f"basic_auth_users:\n  prometheus: {hashed}\n"
    served = serve(write_config(tmp_path / "web.yml", web))
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "wrong").write_text(PASSWORD + "-wrong")
    job = """
  - job_name: {name}
    scheme: https
    tls_config:
      ca_file: {ca}
      cert_file: {cert}
      key_file: {key}
    basic_auth:
      username: prometheus
      password_file: {password}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
    common = {"ca": pki.ca.cert, "cert": pki.client.cert, "key": pki.client.key, "port": served.port}
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:"
        + job.format(name="good", password=tmp_path / "password", **common)
        + job.format(name="wrong_password", password=tmp_path / "wrong", **common)
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            "--storage.tsdb.retention.time=1h",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        targets: dict[str, dict] = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                body = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()
                targets = {t["labels"]["job"]: t for t in body["data"]["activeTargets"]}
                up = requests.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": "up"}, timeout=2
                ).json()["data"]["result"]
                values = {r["metric"]["job"]: r["value"][1] for r in up}
                if values.get("good") == "1" and values.get("wrong_password") == "0":
                    break
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.25)
        else:
            pytest.fail(f"up did not become good=1, wrong_password=0; targets: {targets}")
        # Fetched again: the snapshot taken before the `up` query may predate the first scrape.
        body = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()
        targets = {t["labels"]["job"]: t for t in body["data"]["activeTargets"]}
        assert "401" in targets["wrong_password"]["lastError"], targets["wrong_password"]
        assert targets["good"]["health"] == "up"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
