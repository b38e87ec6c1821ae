"""End to end with the real Alertmanager 0.25: it posts to the relay, the relay to the fake robots."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from relay_am import alertmanager, alertmanager_binary, am_alert, wait_for
from relay_helpers import captured, harness, metric_value

from comfyui_exporter.relay.payload import parse_payload

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _need_alertmanager() -> None:
    alertmanager_binary()


async def test_alertmanager_payloads_are_parsed_and_delivered(tmp_path: Path) -> None:
    targets = {
        "ops-dingtalk": {
            "type": "dingtalk",
            "robot": {"secret": "SECe2e000000001", "keyword": "告警"},
            "keyword": "告警",
        },
        "ops-wecom": {"type": "wecom", "language": "en"},
    }
    async with harness(tmp_path, targets) as h:
        token_file = tmp_path / "secrets" / "relay_token"
        async with alertmanager(tmp_path, h.url, token_file, list(targets)) as am:
            await am.post_alerts([am_alert("ComfyUIOutOfMemory", error_type="oom")])
            await wait_for(lambda: len(h.robots.accepted()) >= 2, 10, "firing messages")
            ding = h.robots.accepted("dingtalk")[0]
            assert "ComfyUIOutOfMemory" in ding.text and "gpu-box-1" in ding.text and "oom" in ding.text
            assert f"{am.url}/#/silences/new?filter=" in ding.text  # externalURL + groupLabels
            assert "http://prometheus.example:9090/graph?g0.expr=up" in ding.text
            wecom = h.robots.accepted("wecom")[0]
            assert "FIRING: ComfyUIOutOfMemory" in wecom.text
            await am.post_alerts([am_alert("ComfyUIOutOfMemory", resolved=True, error_type="oom")])
            await wait_for(lambda: len(h.robots.accepted()) >= 4, 10, "resolved messages")
            assert "告警恢复" in h.robots.accepted("dingtalk")[-1].text
        received = [r["payload"] for r in h.events("received")]
        assert len(received) == 4 and not h.robots.rejected()
        for live in received:  # what the real Alertmanager sends parses, and matches the stored captures
            parsed = parse_payload(json.dumps(live))
            assert parsed.group_labels == {"alertname": "ComfyUIOutOfMemory", "comfyui": "gpu-box-1"}
            assert set(live) == set(captured(live["status"]))
            assert set(live["alerts"][0]) == set(captured(live["status"])["alerts"][0])


async def test_robot_outage_makes_alertmanager_retry_until_delivered(tmp_path: Path) -> None:
    delivery = {
        "deadline_seconds": 1.0,
        "attempt_timeout_seconds": 0.3,
        "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.3,
    }
    # Time compressed: rate windows x0.25 (a robot minute is 15 s), a 1 s relay deadline and a short
    # Alertmanager group_interval, so a few seconds of outage already mean several 503 -> retry cycles.
    async with harness(
        tmp_path,
        {"ops-dingtalk": {"type": "dingtalk", "robot": {"secret": "SECoutage0000001"}}},
        delivery=delivery,
        scale=0.25,
    ) as h:
        async with alertmanager(
            tmp_path, h.url, tmp_path / "secrets" / "relay_token", ["ops-dingtalk"]
        ) as am:
            h.robots.down(502)
            t0 = time.monotonic()
            await am.post_alerts([am_alert("ComfyUIRobotOutage")])
            await wait_for(
                lambda: len({r["id"] for r in h.events("failed") if r["http_status"] == 503}) >= 4,
                25,
                "four 503 answers to Alertmanager",
            )
            outage = time.monotonic() - t0
            h.robots.up()
            up_at = time.time()
            await wait_for(lambda: bool(h.robots.accepted()), 25, "delivery after the outage")
            recovered = time.monotonic() - t0 - outage
            failed_requests = await am.metric(
                "alertmanager_notification_requests_failed_total", integration="webhook"
            )
        delivered = h.events("delivered")
        assert len(delivered) == 1 and len(h.robots.accepted()) == 1
        assert "ComfyUIRobotOutage" in h.robots.accepted()[0].text
        failed = [r for r in h.events("failed")]
        assert all(r["http_status"] == 503 for r in failed)  # never 2xx (nor 4xx) while undelivered
        retries = {r["id"] for r in h.events("received")}
        assert len(retries) >= 5  # each Alertmanager retry is a new request to the relay
        assert h.robots.accepted()[0].at >= up_at - 0.01
        assert failed_requests >= 4  # Alertmanager saw the 503s and retried
        print(
            f"\noutage: {len(failed)} answers 503 over {outage:.1f}s, delivered {recovered:.1f}s after the "
            f"robot came back; Alertmanager counted {failed_requests:.0f} failed webhook requests"
        )


async def test_two_alertmanagers_in_split_brain_page_once(tmp_path: Path) -> None:
    """Two Alertmanagers that cannot see each other (no cluster: a partition) both notify the relay of
    the same alert: the robot gets one message, the second is answered 200 as a duplicate (#15.2)."""
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        token_file = tmp_path / "secrets" / "relay_token"
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        alert = am_alert("ComfyUIOutOfMemory", error_type="oom")  # one alert, one startsAt, to both
        async with (
            alertmanager(tmp_path / "a", h.url, token_file, ["d"]) as am_a,
            alertmanager(tmp_path / "b", h.url, token_file, ["d"]) as am_b,
        ):
            await am_a.post_alerts([alert])
            await am_b.post_alerts([alert])
            await wait_for(lambda: len(h.events("duplicate")) >= 1, 15, "the second peer's notification")
            sent_a = await am_a.metric("alertmanager_notifications_total", integration="webhook")
            sent_b = await am_b.metric("alertmanager_notifications_total", integration="webhook")
        assert sent_a >= 1 and sent_b >= 1  # both really notified
        assert len(h.robots.accepted()) == 1, [r.text for r in h.robots.accepted()]
        assert len(h.events("delivered")) == 1
        dups = metric_value(
            await h.metrics(), "comfyui_alert_relay_duplicate_notifications_total", target="d"
        )
        assert dups >= 1


async def test_event_alert_through_the_real_alertmanager_shows_exception_and_prompt(tmp_path: Path) -> None:
    """The exporter's event alert (#13) as Alertmanager's API takes it; the robot message shows its
    exception, node type, prompt id and its own failures link."""
    async with harness(tmp_path, {"d": {"type": "dingtalk", "language": "en"}}) as h:
        async with alertmanager(tmp_path, h.url, tmp_path / "secrets" / "relay_token", ["d"]) as am:
            event = am_alert("ComfyUIPromptFailed", error_type="oom", node_type="KSampler")
            event["annotations"].update(
                summary="Prompt failed on gpu-box-1: oom",
                description="A prompt on gpu-box-1 failed in KSampler (node 3).",
                exception_type="torch.OutOfMemoryError",
                exception_message="CUDA out of memory. Tried to allocate 2.00 GiB",
                prompt_id="0b7e6c1a-2f9d-4e2b-8c1d-5a6f7e8d9c0b",
                node_id="3",
                failures_url="http://exporter.studio.lan:9188/failures?comfyui=gpu-box-1",
            )
            await am.post_alerts([event])
            await wait_for(lambda: bool(h.robots.accepted()), 10, "the event alert's message")
        text = h.robots.accepted()[0].text
        assert "Failed node: KSampler — torch.OutOfMemoryError: CUDA out of memory. Tried to allocate" in text
        assert "Prompt: 0b7e6c1a-2f9d-4e2b-8c1d-5a6f7e8d9c0b · node 3" in text
        assert "[Failures](http://exporter.studio.lan:9188/failures?comfyui=gpu-box-1)" in text
