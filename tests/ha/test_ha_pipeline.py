"""HA on the real binaries: two Prometheus replicas, a three-node Alertmanager cluster, the relay.

Each test fails a different simulated ComfyUI instance, so each starts its own alert group (a
group that already exists would hold the alert until its next group_interval tick). "Exactly one"
is checked after a quiet period of two peer timeouts plus a group interval: a duplicate from a
second peer, or a retry, would have arrived by then.

Order matters: the stack is shared, and the last two tests kill a Prometheus replica and an
Alertmanager for good.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.binaries import wait_until

from .ha_stack import GROUP_WAIT_S, PEER_TIMEOUT_S, HAStack, ha_stack

pytestmark = pytest.mark.e2e

INSTANCES = ["ha-one", "ha-relaydown", "ha-promkill", "ha-amkill"]
QUIET_S = 2 * PEER_TIMEOUT_S + 5 + 1  # two peers' waits + group_interval + a second
DINGTALK = "/alerts/dingtalk"


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAStack]:
    with ha_stack(Path(tmp_path_factory.mktemp("ha")), INSTANCES) as stack:
        yield stack
        print(f"\n[ha] delivery times: {stack.notes}")


def _self_metric(url: str, name: str) -> list[float]:
    """A server's own metric, one value per series (read from its /metrics: not scraped here)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]


def _exactly_one(ha: HAStack, comfyui: str) -> None:
    time.sleep(QUIET_S)
    messages = ha.messages(comfyui)
    assert len(messages) == 1, [m.text[:120] for m in messages]
    assert ha.robots.rejected() == [], "the relay sent something the robot refused (signature?)"


def test_one_failure_is_one_message_from_one_peer(ha: HAStack) -> None:
    started = ha.fail("ha-one")
    message = ha.wait_message("ha-one")
    ha.notes["one_failure_s"] = round(message.at - started, 2)
    # The exporter's event alert is the message; the rule alert of the same OOM is inhibited by it.
    assert "ComfyUIPromptFailed" in message.text, message.text[:200]
    # Both replicas fire the rule alert; without `replica` the two are one alert on every peer.
    for prom in ha.prometheus:
        wait_until(
            lambda p=prom: [
                a for a in p.alerts() if a["labels"].get("comfyui") == "ha-one" and a["state"] == "firing"
            ],
            10,
            what=f"firing on {prom.workdir.name}",
        )
    for am in ha.alertmanagers:
        (alert,) = wait_until(
            lambda a=am: ha.am_alerts(a, "ha-one", "ComfyUIOutOfMemory"),
            10,
            what=f"the rule alert on {am.name}",
        )
        assert "replica" not in alert["labels"], alert["labels"]
        # The exporter sent its event alert to every peer itself (alerts are not gossiped).
        (event,) = wait_until(
            lambda a=am: ha.am_alerts(a, "ha-one", "ComfyUIPromptFailed"),
            10,
            what=f"the event alert on {am.name}",
        )
        assert event["labels"]["error_type"] == "oom", event["labels"]
    _exactly_one(ha, "ha-one")
    assert len(ha.senders("ha-one")) == 1, ha.senders("ha-one")
    assert len(ha.mails("ha-one")) == 1, ha.mails("ha-one")  # e-mail is deduplicated the same way
    for prom in ha.prometheus:  # both replicas really sent to all three peers
        sent = _self_metric(prom.url, "prometheus_notifications_sent_total")
        assert len(sent) == 3 and all(v > 0 for v in sent), sent


def test_relay_down_when_the_notification_comes_then_retried_once(ha: HAStack) -> None:
    """The relay is stopped before Alertmanager's webhook arrives; Alertmanager's retry delivers it
    once the relay is back."""
    ha.relay.stop()
    started = ha.fail("ha-relaydown")
    wait_until(
        lambda: ha.link.seen(DINGTALK, "refused", "ha-relaydown"),
        30,
        interval=0.05,
        what="Alertmanager to find the relay down",
    )
    refused_at = time.time()
    ha.relay.start()
    back_at = time.time()
    message = ha.wait_message("ha-relaydown", timeout=60)
    ha.notes["relay_down_retry_s"] = {
        "failure_to_message": round(message.at - started, 2),
        "relay_back_to_message": round(message.at - back_at, 2),
        "refused_to_back": round(back_at - refused_at, 2),
    }
    _exactly_one(ha, "ha-relaydown")


def test_one_prometheus_killed_alerts_still_arrive(ha: HAStack) -> None:
    dead, alive = ha.prometheus
    dead.process.kill()
    dead.process.wait(5)
    started = ha.fail("ha-promkill")
    message = ha.wait_message("ha-promkill")
    ha.notes["prometheus_killed_s"] = round(message.at - started, 2)
    _exactly_one(ha, "ha-promkill")
    assert (alive.query_value('count(ALERTS{comfyui="ha-promkill",alertstate="firing"})') or 0) >= 1


def test_sending_alertmanager_killed_in_group_wait_one_message_within_peer_timeout(ha: HAStack) -> None:
    first, *others = ha.by_position()  # the peer that would notify; the others wait for it
    started = ha.fail("ha-amkill")
    wait_until(
        lambda: ha.am_alerts(first, "ha-amkill"),
        30,
        interval=0.02,
        what=f"the alert on the sending peer {first.name}",
    )
    arrived = time.time()
    first.process.kill()  # -9, inside group_wait (1 s): it never notifies nor gossips a log entry
    first.process.wait(5)
    killed = time.time()
    assert killed - arrived < GROUP_WAIT_S, f"too slow to kill within group_wait: {killed - arrived:.2f} s"
    message = ha.wait_message("ha-amkill", timeout=30)
    # Normal: group_wait after the alert arrived. Now the next peer first waits one peer_timeout.
    extra = message.at - (arrived + GROUP_WAIT_S)
    ha.notes["am_killed"] = {
        "failure_to_message": round(message.at - started, 2),
        "delay_beyond_group_wait": round(extra, 2),
        "peer_timeout": PEER_TIMEOUT_S,
    }
    assert extra <= PEER_TIMEOUT_S + 2.0, f"{extra:.2f} s beyond group_wait (peer_timeout {PEER_TIMEOUT_S} s)"
    _exactly_one(ha, "ha-amkill")
    (sender,) = ha.senders("ha-amkill")
    assert sender != first.url and sender in {am.url for am in others}, (sender, first.url)
