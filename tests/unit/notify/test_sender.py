"""The sender against a real HTTP server on 127.0.0.1: batching, retries, overflow, auth, metrics."""

from __future__ import annotations

import base64
import socket
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from comfyui_exporter.config.args import parse_config
from comfyui_exporter.config.settings import AlertmanagerConfig, ConfigError
from comfyui_exporter.notify.metrics import AlertSenderCollector
from comfyui_exporter.notify.sender import AlertSender, display_url
from tests.support.sinks import HTTPSink
from tests.support.stack import wait_until


def _alert(i: int) -> dict:
    return {"labels": {"alertname": "ComfyUIPromptFailed", "n": str(i)}, "annotations": {}}


def _posted(sink: HTTPSink) -> list[dict]:
    return [a for r in sink.requests("/api/v2/alerts") for a in r.json]


def test_every_alertmanager_gets_every_alert_and_a_burst_is_batched() -> None:
    with HTTPSink() as one, HTTPSink() as two:
        sender = AlertSender(AlertmanagerConfig(urls=(one.url, two.url + "/")))
        sender.start()
        try:
            started = time.monotonic()
            sender.submit([_alert(0)])
            sender.submit([_alert(1), _alert(2)])
            for sink in (one, two):
                wait_until(lambda s=sink: len(_posted(s)) == 3, 10, what="3 alerts")
            assert len(one.requests("/api/v2/alerts")) <= 2  # the burst shares a POST
            assert one.requests()[0].headers["content-type"] == "application/json"
            assert one.requests()[0].received_mono - started < 2
            assert [w.stats.sent for w in sender.workers] == [3, 3]
        finally:
            sender.stop()


def test_an_outage_is_retried_and_counted_and_the_alert_arrives_once() -> None:
    with HTTPSink(status=503) as sink:
        sender = AlertSender(AlertmanagerConfig(urls=(sink.url,)))
        registry = CollectorRegistry()
        registry.register(AlertSenderCollector(sender))
        sender.start()
        try:
            sender.submit([_alert(1)])
            worker = sender.workers[0]
            wait_until(lambda: worker.stats.failed >= 2, 10, what="a retry")
            assert worker.stats.up == 0 and worker.stats.failed >= 2 and worker.stats.sent == 0
            text = generate_latest(registry).decode()
            assert f'comfyui_exporter_alerts_alertmanager_up{{alertmanager="{sink.url}"}} 0.0' in text
            assert f'comfyui_exporter_alerts_queue_length{{alertmanager="{sink.url}"}} 1.0' in text
            sink.status = 200
            wait_until(lambda: worker.stats.sent == 1, 15, what="delivery after the outage")
            ok = [r for r in sink.requests() if r.received_mono]  # all attempts carried the same alert
            assert all(r.json == [_alert(1)] for r in ok)
            time.sleep(0.5)
            assert worker.stats.sent == 1 and worker.stats.queued == 0
            text = generate_latest(registry).decode()
            assert f'comfyui_exporter_alerts_sent_total{{alertmanager="{sink.url}"}} 1.0' in text
            assert f'comfyui_exporter_alerts_dropped_total{{alertmanager="{sink.url}"}} 0.0' in text
        finally:
            sender.stop()


def test_overflow_and_refusals_are_counted_as_dropped() -> None:
    with HTTPSink(status=400) as sink:
        sender = AlertSender(AlertmanagerConfig(urls=(sink.url,), queue_capacity=3))
        worker = sender.workers[0]
        sender.submit([_alert(i) for i in range(5)])  # not started yet: the queue holds 3
        assert (worker.stats.dropped, worker.stats.queued) == (2, 3)
        sender.start()
        try:
            wait_until(lambda: worker.stats.dropped == 5, 10, what="the 400 to drop the rest")
            assert worker.stats.sent == 0 and worker.stats.up == 1
            assert [a["labels"]["n"] for a in _posted(sink)] == ["2", "3", "4"]  # the oldest went first
        finally:
            sender.stop()


def test_basic_auth_and_bearer_token_come_from_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "token").write_text("tok-123\n")
    with HTTPSink() as sink:
        config, _ = parse_config(
            [
                "--alertmanager.url",
                sink.url,
                "--alertmanager.basic-auth-username",
                "exporter",
                "--alertmanager.basic-auth-password-file",
                str(tmp_path / "pw"),
            ],
            environ={},
        )
        assert "s3cret" not in repr(config)
        sender = AlertSender(config.alertmanager)
        sender.start()
        try:
            sender.submit([_alert(1)])
            wait_until(lambda: sink.requests(), 10, what="a POST")
            expected = "Basic " + base64.b64encode(b"exporter:s3cret").decode()
            assert sink.requests()[0].headers["authorization"] == expected
        finally:
            sender.stop()
        config, _ = parse_config(
            ["--alertmanager.url", sink.url, "--alertmanager.bearer-token-file", str(tmp_path / "token")],
            environ={},
        )
        sink.clear()
        sender = AlertSender(config.alertmanager)
        sender.start()
        try:
            sender.submit([_alert(1)])
            wait_until(lambda: sink.requests(), 10, what="a POST")
            assert sink.requests()[0].headers["authorization"] == "Bearer tok-123"
        finally:
            sender.stop()


def test_flags_environment_and_errors() -> None:
    config, _ = parse_config([], environ={})
    assert not config.alertmanager.enabled
    # never 0.0.0.0 and never a compose service name: this host's name, as Prometheus derives it
    assert config.public_url == f"http://{socket.gethostname()}:9188"
    config, _ = parse_config(
        ["--alertmanager.event-ttl", "90s", "--alertmanager.cooldown", "2m", "--listen", "10.1.2.3:9999"],
        environ={"COMFYUI_EXPORTER_ALERTMANAGER_URL": "http://am1:9093, http://am2:9093"},
    )
    am = config.alertmanager
    assert am.urls == ("http://am1:9093", "http://am2:9093")
    assert (am.event_ttl, am.cooldown, am.timeout) == (90.0, 120.0, 10.0)
    assert config.public_url == "http://10.1.2.3:9999"
    config, _ = parse_config(
        ["--web.external-url", "https://mon.internal/comfy/", "--alertmanager.label", "chat=dingtalk"],
        environ={},
    )
    assert config.public_url == "https://mon.internal/comfy"
    assert config.alertmanager.labels == (("chat", "dingtalk"),)
    for argv, flag in (
        (["--alertmanager.url", "am:9093"], "--alertmanager.url"),
        (["--alertmanager.url", "http://u:p@am:9093"], "--alertmanager.url"),
        (["--alertmanager.event-ttl", "soon"], "--alertmanager.event-ttl"),
        (["--alertmanager.bearer-token-file", "/nonexistent/token"], "--alertmanager.bearer-token-file"),
        (["--alertmanager.key-file", "/k"], "--alertmanager.key-file"),
        (["--alertmanager.label", "severity=info"], "--alertmanager.label"),
        (["--alertmanager.label", "9x=1"], "--alertmanager.label"),
    ):
        with pytest.raises(ConfigError, match=flag):
            parse_config(argv, environ={})


def test_config_file_alertmanager_block(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "token").write_text("t")
    path = tmp_path / "exporter.yml"
    path.write_text(
        "alertmanager:\n  urls: [http://127.0.0.1:9093]\n  event_ttl: 10m\n  cooldown: 60\n"
        "  bearer_token_file: token\n  labels: {chat: wecom}\nweb:\n  external_url: http://exporter.lan:9188\n"
    )
    config, _ = parse_config(["--config", str(path)], environ={})
    am = config.alertmanager
    assert am.urls == ("http://127.0.0.1:9093",)
    assert (am.event_ttl, am.cooldown, am.bearer_token) == (600.0, 60.0, "t")
    assert config.public_url == "http://exporter.lan:9188"
    assert am.labels == (("chat", "wecom"),)
    path.write_text("alertmanager:\n  urls: [am:9093]\n")
    with pytest.raises(ConfigError, match=r"exporter.yml:2: alertmanager.urls\[0\]"):
        parse_config(["--config", str(path)], environ={})


def test_display_url_has_no_credentials() -> None:
    assert display_url("https://user:pw@am.internal:9093/prefix/") == "https://am.internal:9093/prefix"


def test_a_burst_of_updates_to_one_alert_is_coalesced_while_it_waits() -> None:
    """50 failures of one class: one first alert and one folded alert whose count grows; the
    versions that waited behind an outage are replaced, not all sent."""
    with HTTPSink(status=503) as sink:
        sender = AlertSender(AlertmanagerConfig(urls=(sink.url,)))
        worker = sender.workers[0]
        sender.start()
        try:
            sender.submit([{"labels": {"a": "first"}, "annotations": {}}])
            wait_until(lambda: worker.stats.failed >= 1, 10, what="a failed POST")
            for n in range(1, 50):
                sender.submit([{"labels": {"a": "repeated"}, "annotations": {"count": str(n)}}])
            assert worker.stats.queued == 2 and worker.stats.coalesced == 48
            sink.status = 200
            wait_until(lambda: worker.stats.sent == 2, 15, what="both delivered")
            last = [a for r in sink.requests() for a in r.json if a["labels"]["a"] == "repeated"][-1]
            assert last["annotations"]["count"] == "49"
        finally:
            sender.stop()
