"""Delivery semantics: journal first, 200 only when delivered, 503 to make Alertmanager retry, 500 for
permanent robot errors, rejected requests journaled, reload, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml
from relay_helpers import alert, harness, metric_value, payload

from comfyui_exporter.relay.metrics import REASONS
from comfyui_exporter.relay.testing import Received

FAST = {
    "deadline_seconds": 1.0,
    "attempt_timeout_seconds": 0.3,
    "backoff_initial_seconds": 0.05,
    "backoff_max_seconds": 0.2,
}


async def test_journal_written_and_flushed_before_the_robot_is_called(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        seen: list[list[str]] = []

        def on_request(_: Received) -> None:  # runs while the relay waits for the robot
            seen.append([r["event"] for r in h.journal])

        h.robots.on_request = on_request
        status, answer = await h.post("d", payload())
        assert status == 200
        assert seen == [["received", "sending"]]
        events = [r["event"] for r in h.journal]
        assert events == ["received", "sending", "delivered"]
        received = h.events("received")[0]
        assert received["payload"]["alerts"][0]["labels"]["alertname"] == "ComfyUIOutOfMemory"
        assert h.events("delivered")[0]["id"] == received["id"] == answer["id"]


async def test_rejected_requests_are_answered_and_journaled(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        assert (await h.post("d", payload(), token=""))[0] == 401
        assert (await h.post("d", payload(), token="wrong-token"))[0] == 401
        assert (await h.post("d", b"{not json"))[0] == 400
        assert (await h.post("d", {**payload(), "version": "5"}))[0] == 400
        assert (await h.post("nope", payload()))[0] == 404
        assert (await h.post("", payload(), token="", path="/-/reload"))[0] == 401
        rejected = h.events("rejected")
        assert [(r["status"], r["reason"]) for r in rejected] == [
            (401, "unauthorized"),
            (401, "unauthorized"),
            (400, "malformed"),
            (400, "malformed"),
            (404, "unknown_target"),
            (401, "unauthorized"),
        ]
        assert "body" not in rejected[0]  # unauthenticated junk is not stored
        assert json.loads(rejected[3]["body"])["version"] == "5"  # an authenticated payload is never lost
        assert not h.robots.received
        text = await h.metrics()
        assert metric_value(text, "comfyui_alert_relay_rejected_requests_total", reason="unauthorized") == 3
        assert metric_value(text, "comfyui_alert_relay_rejected_requests_total", reason="malformed") == 2


async def test_journal_endpoint_records_without_delivering(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        status, answer = await h.post("", payload(), path="/journal")
        assert status == 200 and answer["status"] == "journaled"
        assert (await h.post("", payload(), token="x", path="/journal"))[0] == 401
        assert h.events("journal_only")[0]["payload"]["version"] == "4" and not h.robots.received


@pytest.mark.parametrize(
    ("kind", "robot", "target", "reason", "hint"),
    [
        ("dingtalk", {"secret": "SECright00001"}, {"secret": "SECwrong00001"}, "signature", "secret_file"),
        ("dingtalk", {"keyword": "ALERTKW"}, {}, "keyword", "keyword"),
        ("feishu", {"secret": "right-secret-1"}, {"secret": "wrong-secret-1"}, "signature", "secret_file"),
        ("feishu", {"keyword": "ALERTKW"}, {}, "keyword", "keyword"),
    ],
)
async def test_permanent_robot_errors_answer_500_and_are_explained(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    robot: dict[str, str],
    target: dict[str, str],
    reason: str,
    hint: str,
) -> None:
    async with harness(tmp_path, {"t": {"type": kind, "robot": robot, **target}}) as h:
        status, answer = await h.post("t", payload())
        assert status == 500 and answer["reason"] == reason
        assert len(h.robots.received) == 1 and not h.robots.accepted()  # not retried: it cannot help
        failed = h.events("failed")[0]
        assert failed["http_status"] == 500 and failed["reason"] == reason
        text = await h.metrics()
        assert (
            metric_value(text, "comfyui_alert_relay_notification_failures_total", target="t", reason=reason)
            == 1
        )
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any("rejected the message permanently" in m and hint in m for m in errors), errors


async def test_robot_down_answers_503_inside_the_deadline_then_recovers(tmp_path: Path) -> None:
    # The retries during the outage spend rate-limit tokens (a 502 may still have been counted by the
    # robot); a compressed window (1 min -> 3 s) lets the next token come quickly.
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}, delivery=FAST, scale=0.05) as h:
        h.robots.down(502)
        t0 = time.monotonic()
        status, answer = await h.post("d", payload())
        elapsed = time.monotonic() - t0
        assert status == 503 and answer["reason"] == "http_5xx" and 0.5 < elapsed < 1.5
        assert h.events("failed")[0]["attempts"] >= 3  # retried with backoff inside the deadline
        h.robots.up()
        assert (await h.post("d", payload()))[0] == 200
        assert [r["event"] for r in h.journal] == [
            "received",
            "sending",
            "failed",
            "received",
            "sending",
            "delivered",
        ]


async def test_hanging_robot_times_out_and_answers_503(tmp_path: Path) -> None:
    async with harness(tmp_path, {"w": {"type": "wecom"}}, delivery=FAST) as h:
        h.robots.down("hang")
        t0 = time.monotonic()
        status, answer = await h.post("w", payload())
        assert status == 503 and answer["reason"] == "timeout" and time.monotonic() - t0 < 1.5


async def test_transient_robot_errors_are_retried(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}, "w": {"type": "wecom"}}, delivery=FAST) as h:
        h.robots.inject(h.relay.config.targets["d"].url.reveal(), -1, "system busy")
        h.robots.inject(h.relay.config.targets["w"].url.reveal(), 45009, "api freq out of limit")
        for name in ("d", "w"):
            status, answer = await h.post(name, payload())
            assert status == 200, answer
        assert [r.code for r in h.robots.received] == [-1, 0, 45009, 0]


async def test_split_message_resumes_without_duplicating_delivered_parts(tmp_path: Path) -> None:
    long = "显存不足🔥" * 700  # ~9.8 KB: three WeCom markdown parts
    async with harness(tmp_path, {"w": {"type": "wecom"}}, delivery=FAST, scale=0.05) as h:
        url = h.relay.config.targets["w"].url.reveal()
        h.robots.inject(url, 0, "ok")  # part 1 goes through...
        h.robots.inject(url, -1, "system busy", count=100)  # ...then the robot is busy past the deadline
        body = payload(alert(description=long))
        assert (await h.post("w", body))[0] == 503
        h.robots.robots[url.split("key=")[1]].inject.clear()
        assert (await h.post("w", body))[0] == 200  # Alertmanager's retry
        firsts = [r for r in h.robots.accepted() if r.text.startswith("(1/")]
        assert len(firsts) == 1 and len({r.text for r in h.robots.accepted()}) == len(h.robots.accepted())
        assert sum(1 for r in h.robots.accepted() if r.text.startswith("(")) == 3


async def test_metrics_have_all_series_from_the_start(tmp_path: Path) -> None:
    async with harness(tmp_path, {"a": {"type": "dingtalk"}, "b": {"type": "feishu"}}) as h:
        text = await h.metrics()
        for target in ("a", "b"):
            for reason in REASONS:
                assert (
                    metric_value(
                        text, "comfyui_alert_relay_notification_failures_total", target=target, reason=reason
                    )
                    == 0
                )
            assert metric_value(text, "comfyui_alert_relay_notifications_total", target=target) == 0
            assert metric_value(text, "comfyui_alert_relay_queue_depth", target=target) == 0
            assert metric_value(text, "comfyui_alert_relay_delivery_seconds_count", target=target) == 0
        assert "comfyui_alert_relay_build_info{" in text
        assert (await h.post("a", payload()))[0] == 200
        text = await h.metrics()
        assert metric_value(text, "comfyui_alert_relay_notifications_total", target="a") == 1
        assert metric_value(text, "comfyui_alert_relay_delivery_seconds_count", target="a") == 1
        async with h.session.get(f"{h.url}/-/healthy") as r1, h.session.get(f"{h.url}/-/ready") as r2:
            assert r1.status == 200 and r2.status == 200


async def test_reload_adds_targets_and_keeps_running_config_on_error(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        cfg = yaml.safe_load(h.config_path.read_text())
        (tmp_path / "secrets" / "w.url").write_text(h.robots.wecom())
        cfg["targets"]["w"] = {"type": "wecom", "url_file": str(tmp_path / "secrets" / "w.url")}
        h.config_path.write_text(yaml.safe_dump(cfg))
        async with h.session.post(f"{h.url}/-/reload", headers={"Authorization": f"Bearer {h.token}"}) as r:
            assert r.status == 200
        assert (await h.post("w", payload()))[0] == 200
        cfg["targets"]["w"]["langauge"] = "en"
        h.config_path.write_text(yaml.safe_dump(cfg))
        async with h.session.post(f"{h.url}/-/reload", headers={"Authorization": f"Bearer {h.token}"}) as r:
            assert r.status == 500 and "targets.w.langauge" in await r.text()
        assert (await h.post("w", payload()))[0] == 200 and (await h.post("d", payload()))[0] == 200
        assert metric_value(await h.metrics(), "comfyui_alert_relay_config_last_reload_successful") == 0
        del cfg["targets"]["w"]
        h.config_path.write_text(yaml.safe_dump(cfg))
        await h.relay.reload()
        assert (await h.post("w", payload()))[0] == 404


async def test_concurrent_notifications_are_all_settled(tmp_path: Path) -> None:
    async with harness(tmp_path, {"f": {"type": "feishu"}}) as h:
        results = await asyncio.gather(
            *(h.post("f", payload(alert(comfyui=f"n{i}", fingerprint=str(i)))) for i in range(30))
        )
        assert all(status == 200 for status, _ in results)
        delivered = h.events("delivered")
        assert sorted(r["id"] for r in delivered) == sorted(a["id"] for _, a in results)
        assert not h.robots.rejected()  # 5/s and 100/min respected while merging
