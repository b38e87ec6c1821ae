"""The exporter's own HTTP surface: landing page, health, readiness, 404, gzip, OpenMetrics."""

from __future__ import annotations

import gzip

import requests

from tests.support.stack import free_port, running_exporter


def test_endpoints() -> None:
    with running_exporter("--comfyui-url", f"x=http://127.0.0.1:{free_port()}") as exporter:
        assert requests.get(exporter.url + "/-/healthy", timeout=5).text == "OK\n"
        assert requests.get(exporter.url + "/-/ready", timeout=5).status_code == 200
        landing = requests.get(exporter.url + "/", timeout=5)
        assert landing.headers["Content-Type"].startswith("text/html") and 'href="/metrics"' in landing.text
        assert requests.get(exporter.url + "/nope", timeout=5).status_code == 404
        om = requests.get(
            exporter.url + "/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5
        )
        assert om.headers["Content-Type"].startswith("application/openmetrics-text") and om.text.endswith(
            "# EOF\n"
        )
        raw = requests.get(
            exporter.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True
        ).raw.read()
        assert b'comfyui_up{comfyui="x"} 0.0' in gzip.decompress(raw)
        assert requests.get(exporter.url + "/failures", timeout=5).json() == {"failures": []}


def test_failures_endpoint_can_be_disabled() -> None:
    with running_exporter(
        "--comfyui-url", f"x=http://127.0.0.1:{free_port()}", "--web.disable-failures"
    ) as exporter:
        assert requests.get(exporter.url + "/failures", timeout=5).status_code == 404
