"""``comfyui-exporter doctor`` against the simulator, a stopped ComfyUI, a wrong port and an old ComfyUI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from comfyui_exporter.cli import doctor
from comfyui_exporter.config.args import parse_config
from comfyui_exporter.exposition.http_server import ExporterHTTPServer
from comfyui_exporter.gpu.fake import FakeNvml
from comfyui_exporter.sim.testing import SimHandle, free_port, running_sim

REPO = Path(__file__).resolve().parents[2]
RTX4090 = REPO / "tests" / "fixtures" / "nvml" / "consumer_rtx4090.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = doctor.main(list(argv))
    return rc, capsys.readouterr().out


def rows(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(check, instance) -> (result, detail) from the table."""
    table = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in ("OK", "INFO", "WARN", "FAIL", "SKIP"):
            table[(parts[0], parts[1])] = (parts[2], parts[3])
    return table


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_sim() as handle:
        yield handle


def test_all_green_against_the_simulator(sim: SimHandle, capsys) -> None:
    rc, out = run(
        capsys, "--comfyui-url", f"gpu0={sim.url}", "--listen", f"127.0.0.1:{free_port()}", "--no-gpu"
    )
    table = rows(out)
    assert rc == 0, out
    for check in ("reachable", "version", "websocket", "history", "jobs-api"):
        assert table[(check, "gpu0")][0] == "OK", (check, out)
    assert "ComfyUI 0.8.0" in table[("version", "gpu0")][1]
    assert "first broadcast: status" in table[("websocket", "gpu0")][1]
    assert table[("plugin", "gpu0")] == (
        "INFO",
        "not installed (optional; `comfyui-exporter install-plugin`, docs/plugin.md)",
    )
    assert table[("nvml", "host")][0] == "SKIP"
    assert table[("listen", "host")][0] == "OK"
    assert out.rstrip().endswith("OK: 0 problem(s), 0 warning(s)")


def test_stopped_comfyui(capsys) -> None:
    with running_sim() as stopped:
        url = stopped.url
        stopped.stop()
        rc, out = run(
            capsys, "--comfyui-url", f"gpu0={url}", "--listen", f"127.0.0.1:{free_port()}", "--no-gpu"
        )
    assert rc == 1
    result, detail = rows(out)[("reachable", "gpu0")]
    assert result == "FAIL" and detail.startswith(f"connection refused at 127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert "fix: start ComfyUI, or fix the port" in out
    assert out.rstrip().endswith("BROKEN: 1 problem(s), 0 warning(s)")


class _WebUI(BaseHTTPRequestHandler):
    """Some other web application (Grafana, a dashboard) on the port ComfyUI was expected on."""

    def do_GET(self) -> None:
        body = b"<html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_wrong_port(sim: SimHandle, capsys) -> None:
    other = ThreadingHTTPServer(("127.0.0.1", 0), _WebUI)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        rc, out = run(
            capsys,
            "--comfyui-url",
            f"html=http://127.0.0.1:{other.server_port}",
            "--comfyui-url",
            f"path={sim.url}/comfy",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--no-gpu",
        )
    finally:
        other.shutdown()
        other.server_close()
    table = rows(out)
    assert rc == 1
    assert table[("reachable", "html")] == (
        "FAIL",
        f"127.0.0.1:{other.server_port} answers /system_stats with text/html, not ComfyUI's JSON",
    )
    assert table[("reachable", "path")][0] == "FAIL" and "HTTP 404" in table[("reachable", "path")][1]
    assert table[("other-checks", "html")][0] == "SKIP"
    assert "wrong port or path" in out


def test_comfyui_without_jobs_api(capsys) -> None:
    with running_sim(no_jobs_api=True) as old:
        rc, out = run(
            capsys, "--comfyui-url", f"old={old.url}", "--listen", f"127.0.0.1:{free_port()}", "--no-gpu"
        )
    assert rc == 0, out
    assert rows(out)[("jobs-api", "old")] == ("WARN", "no /api/jobs: ComfyUI older than 0.6.0, using /queue")
    assert out.rstrip().endswith("OK: 0 problem(s), 1 warning(s)")


def test_listen_address_in_use(sim: SimHandle, capsys) -> None:
    rc, out = run(capsys, "--comfyui-url", sim.url, "--listen", f"127.0.0.1:{sim.port}", "--no-gpu")
    assert rc == 1 and rows(out)[("listen", "host")] == (
        "FAIL",
        f"127.0.0.1:{sim.port} is in use by another program",
    )
    exporter = ExporterHTTPServer(("127.0.0.1", 0), CollectorRegistry(), None, lambda: True)
    exporter.serve_in_thread()
    try:
        rc, out = run(
            capsys, "--comfyui-url", sim.url, "--listen", f"127.0.0.1:{exporter.server_port}", "--no-gpu"
        )
    finally:
        exporter.shutdown()
        exporter.server_close()
    assert rc == 0 and rows(out)[("listen", "host")][0] == "WARN"
    assert "in use by a running comfyui-exporter" in out


def test_broken_web_config(sim: SimHandle, tmp_path: Path, capsys) -> None:
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_filse: x.crt\n")
    rc, out = run(
        capsys,
        "--comfyui-url",
        sim.url,
        "--web.config.file",
        str(tmp_path / "web.yml"),
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--no-gpu",
    )
    assert rc == 1
    result, detail = rows(out)[("web-config", "host")]
    assert (
        result == "FAIL" and "tls_server_config.cert_filse: unknown key (did you mean cert_file?)" in detail
    )


def test_gpu_mapping_with_a_recorded_nvml() -> None:
    with running_sim(device="cuda", device_name="NVIDIA GeForce RTX 4090", vram_total=25393692672) as gpu_sim:
        config, _ = parse_config(
            ["--comfyui-url", f"gpu0={gpu_sim.url}", "--listen", f"127.0.0.1:{free_port()}"], {}
        )
        checks = doctor.run_checks(config, nvml_factory=lambda: FakeNvml.from_file(RTX4090))
        by = {(c.check, c.target): c for c in checks}
        assert by[("nvml", "host")].result == "OK" and "1 GPU(s)" in by[("nvml", "host")].detail
        assert "NVIDIA GeForce RTX 4090, GPU-6513270e" in by[("gpu-0", "host")].detail
        assert by[("gpu-mapping", "gpu0")].result == "OK"
        assert (
            by[("gpu-mapping", "gpu0")].detail
            == "GPU 0 (GPU-6513270e-269e-4d37-b2a7-4de452e6b438), by only_model"
        )
        # Two GPUs expected, one present: the GPUMissing alert would fire, so it is broken.
        config, _ = parse_config(
            [
                "--comfyui-url",
                f"gpu0={gpu_sim.url}",
                "--gpu-expected-count",
                "2",
                "--listen",
                f"127.0.0.1:{free_port()}",
            ],
            {},
        )
        checks = doctor.run_checks(config, nvml_factory=lambda: FakeNvml.from_file(RTX4090))
        assert next(c for c in checks if c.check == "nvml").result == "FAIL"


def test_unmapped_instance_suggests_pinning(sim: SimHandle) -> None:
    config, _ = parse_config(["--comfyui-url", f"cpu={sim.url}", "--listen", f"127.0.0.1:{free_port()}"], {})
    checks = doctor.run_checks(config, nvml_factory=lambda: FakeNvml.from_file(RTX4090))
    mapping = next(c for c in checks if c.check == "gpu-mapping")
    assert mapping.result == "INFO" and "is not a CUDA GPU" in mapping.detail  # the simulator runs on "cpu"


def test_missing_nvml_is_a_warning_unless_gpus_are_expected(sim: SimHandle) -> None:
    class Broken:
        def init(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    config, _ = parse_config(["--comfyui-url", sim.url, "--listen", f"127.0.0.1:{free_port()}"], {})
    assert next(c for c in doctor.run_checks(config, Broken) if c.check == "nvml").result == "WARN"
    config, _ = parse_config(
        ["--comfyui-url", sim.url, "--gpu-expected-count", "1", "--listen", "127.0.0.1:0"], {}
    )
    assert next(c for c in doctor.run_checks(config, Broken) if c.check == "nvml").result == "FAIL"


def test_subcommand_from_the_command_line() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "exporter")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "comfyui_exporter",
            "doctor",
            "--comfyui-url",
            f"x=http://127.0.0.1:{port}",
            "--no-gpu",
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"connection refused at 127.0.0.1:{port}" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "comfyui_exporter", "doctor", "--poll-interval", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "--poll-interval: must be positive" in bad.stderr


class _ProxiedComfy(BaseHTTPRequestHandler):
    """A ComfyUI behind a proxy that drops websocket upgrades, with the plugin wanting token "t0k"."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        bodies = {
            "/system_stats": {
                "system": {"comfyui_version": "0.8.0"},
                "devices": [{"name": "cpu", "type": "cpu"}],
            },
            "/history": {},
            "/api/jobs": {"jobs": []},
        }
        if path == "/comfyui-exporter/v1/events":
            ok = self.headers.get("Authorization") == "Bearer t0k"
            status, body = (200, {"events": []}) if ok else (401, {"error": "unauthorized"})
        elif path in bodies:
            status, body = 200, bodies[path]
        else:
            status, body = 404, {}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


def test_proxy_without_websocket_and_plugin_token(tmp_path: Path, capsys) -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ProxiedComfy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"p=http://127.0.0.1:{proxy.server_port}"
    listen = ("--listen", f"127.0.0.1:{free_port()}", "--no-gpu")
    try:
        rc, out = run(capsys, "--comfyui-url", url, *listen)
        table = rows(out)
        assert rc == 0, out  # degraded, not broken: outcomes still come from /history
        assert table[("websocket", "p")][0] == "WARN" and "cannot connect" in table[("websocket", "p")][1]
        assert "proxy_set_header Upgrade" in out
        assert table[("plugin", "p")] == (
            "WARN",
            "installed, and it wants a token the exporter does not have",
        )
        (tmp_path / "token").write_text("wrong\n")
        _, out = run(capsys, "--comfyui-url", url, "--plugin-token-file", str(tmp_path / "token"), *listen)
        assert rows(out)[("plugin", "p")] == ("WARN", "installed, but it refuses the token given")
        (tmp_path / "token").write_text("t0k\n")
        _, out = run(capsys, "--comfyui-url", url, "--plugin-token-file", str(tmp_path / "token"), *listen)
        assert rows(out)[("plugin", "p")][0] == "INFO" and "installed" in rows(out)[("plugin", "p")][1]
        _, out = run(capsys, "--comfyui-url", url, "--plugin", "off", *listen)
        assert rows(out)[("plugin", "p")][0] == "SKIP"
    finally:
        proxy.shutdown()
        proxy.server_close()
