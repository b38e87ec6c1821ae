"""The real ``comfyui-exporter`` process with a web config, a config file, SIGHUP and SIGTERM.

These need the lead's integration (docs in the security report): until it is there, each test
detects that in a second and reports XFAIL with what is missing, instead of failing or hanging.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from comfyui_exporter.sim.testing import free_port, running_sim

from .conftest import PASSWORD, tls_block, wait_for, write_config
from .pki import PKI

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def exporter_process(*args: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "exporter")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfyui_exporter", "--listen", f"127.0.0.1:{port}", "--no-gpu", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def plain_http_answers(port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return requests.get(f"http://127.0.0.1:{port}/-/healthy", timeout=1).status_code == 200
        except requests.exceptions.ConnectionError as exc:
            if "refused" not in str(exc).lower():
                return False  # something answered, but not plain HTTP: TLS
        time.sleep(0.1)
    return False


def test_exporter_serves_tls_and_basic_auth(tmp_path: Path, pki: PKI, hashed: str) -> None:
    web = write_config(tmp_path / "web.yml", tls_block(pki) + f"basic_auth_users:\n  prometheus: {hashed}\n")
    port = free_port()
    with (
        running_sim() as sim,
        exporter_process("--comfyui-url", f"sim={sim.url}", "--web.config.file", str(web), port=port) as proc,
    ):
        assert not plain_http_answers(port), "--web.config.file with TLS must not serve plain HTTP"
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        url = f"https://127.0.0.1:{port}"
        ca = str(pki.ca.cert)
        wait_for(
            lambda: requests.get(url + "/-/ready", verify=ca, auth=("prometheus", PASSWORD), timeout=2).ok, 10
        )
        assert requests.get(url + "/metrics", verify=ca, timeout=5).status_code == 401
        metrics = requests.get(url + "/metrics", verify=ca, auth=("prometheus", PASSWORD), timeout=5)
        assert metrics.status_code == 200 and "comfyui_up" in metrics.text
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert time.monotonic() - started < 2.0


def test_failures_require_auth_leaves_metrics_open(tmp_path: Path, hashed: str) -> None:
    web = write_config(tmp_path / "web.yml", f"basic_auth_users:\n  ops: {hashed}\n")
    port = free_port()
    args = ("--web.config.file", str(web), "--web.failures-require-auth")
    with running_sim() as sim, exporter_process("--comfyui-url", sim.url, *args, port=port) as proc:
        time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail(proc.stderr.read().decode() if proc.stderr else "exporter exited")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(url + "/-/ready", timeout=2).ok, 10, "ready")
        assert requests.get(url + "/metrics", timeout=5).status_code == 200
        assert requests.get(url + "/failures", timeout=5).status_code == 401
        assert requests.get(url + "/failures", auth=("ops", PASSWORD), timeout=5).status_code == 200


def test_sighup_reloads_the_config_file(tmp_path: Path) -> None:
    with running_sim() as a, running_sim() as b:
        config = write_config(
            tmp_path / "c.yml", f"poll_interval: 0.2\ninstances:\n  - name: a\n    url: {a.url}\n"
        )
        port = free_port()
        with exporter_process("--config", str(config), port=port) as proc:
            time.sleep(0.3)
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode() if proc.stderr else "exporter exited")
            url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: 'comfyui_up{comfyui="a"} 1.0' in requests.get(url, timeout=2).text, 10, "a up")
            write_config(
                config,
                f"poll_interval: 0.2\ninstances:\n  - name: a\n    url: {a.url}\n"
                f"  - name: b\n    url: {b.url}\n",
            )
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert proc.poll() is None, "SIGHUP must reload, not stop the exporter"
            wait_for(
                lambda: 'comfyui_up{comfyui="b"} 1.0' in requests.get(url, timeout=2).text, 10, "b added"
            )
            assert 'comfyui_up{comfyui="a"} 1.0' in requests.get(url, timeout=2).text
