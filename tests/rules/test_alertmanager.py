"""alertmanager/alertmanager.yml: amtool check-config, the routing table (amtool config routes test),
the timing and secret conventions, the templates, and inhibition + delivery on a real Alertmanager
(alerts posted to its API; Slack, e-mail and relay webhooks land in local sinks)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.binaries import (
    ALERTMANAGER_DIR,
    REPO,
    Alertmanager,
    prepare_alertmanager_config,
    run_tool,
    start_alertmanager,
    wait_until,
)
from tests.support.sinks import HTTPSink, SMTPSink

CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
DOC = REPO / "docs" / "alerting.md"

# label set -> receivers, in the order Alertmanager resolves them
ROUTES = [
    (
        "severity=critical alertname=ComfyUIOutOfMemory comfyui=a error_type=oom",
        "relay-journal,email-oncall,slack",
    ),
    ("severity=critical alertname=ComfyUIDown", "relay-journal,email-oncall,slack"),
    ("severity=warning alertname=ComfyUIPromptFailures error_type=node_exception", "relay-journal,slack"),
    ("severity=info alertname=ComfyUIRestarted", "relay-journal,journal-only"),
    ("severity=warning chat=slack", "relay-journal,slack"),
    ("severity=warning chat=dingtalk", "relay-journal,relay-dingtalk"),
    ("severity=warning chat=wecom", "relay-journal,relay-wecom"),
    ("severity=warning chat=feishu", "relay-journal,relay-feishu"),
    ("severity=critical chat=feishu", "relay-journal,email-oncall,relay-feishu"),
    ("severity=warning chat=dingtalk,feishu", "relay-journal,relay-dingtalk,relay-feishu"),
    ("severity=critical chat=slack,wecom", "relay-journal,email-oncall,slack,relay-wecom"),
    ("severity=warning chat=teams", "relay-journal,slack"),
    ("severity=info chat=dingtalk", "relay-journal,journal-only"),
    ("severity=warning alertname=ComfyUIAlertRelayDown chat=dingtalk", "relay-journal,email-oncall,slack"),
    ("severity=warning alertname=ComfyUIAlertRelayNotificationFailures", "relay-journal,email-oncall,slack"),
    ("alertname=Unlabelled", "relay-journal,slack"),
    # event alerts pushed by the exporter: their own route (group_wait 1s), no resolved messages
    (
        "alertname=ComfyUIPromptFailed severity=critical comfyui=a error_type=oom",
        "relay-journal,email-oncall-events,slack-events",
    ),
    ("alertname=ComfyUIPromptFailed severity=warning error_type=cuda", "relay-journal,slack-events"),
    ("alertname=ComfyUIPromptsLost severity=warning chat=dingtalk", "relay-journal,relay-dingtalk-events"),
    (
        "alertname=ComfyUIPromptRejected severity=warning chat=slack,feishu",
        "relay-journal,slack-events,relay-feishu-events",
    ),
    ("severity=page", "relay-journal,slack"),
]


def _doc_routes() -> list[tuple[str, str]]:
    """The routing table in docs/alerting.md (first column in backticks, receivers comma-separated)."""
    rows = []
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\|\s*`([^`]*=[^`]*)`[^|]*\|\s*([a-z\-]+(?:,\s*[a-z\-]+)*)\s*\|$", line)
        if match:
            rows.append((match.group(1), match.group(2).replace(" ", "")))
    return rows


def _config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def test_amtool_check_config() -> None:
    result = run_tool("amtool", "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_docs_routing_table_is_parsed() -> None:
    assert len(_doc_routes()) >= 5


@pytest.mark.parametrize(("labels", "receivers"), ROUTES + _doc_routes())
def test_routes(labels: str, receivers: str) -> None:
    result = run_tool(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receivers}",
        *labels.split(),
    )
    assert result.returncode == 0, f"{labels}: expected {receivers}, got {result.stdout.strip()}"
    assert result.stdout.strip() == receivers


def test_grouping_and_timing() -> None:
    route = _config()["route"]
    assert route["group_by"] == ["alertname", "comfyui", "error_type"]
    assert route["group_interval"] == "5m"  # the same group at most once per 5 minutes
    assert route["repeat_interval"] == "4h"  # reminders
    assert route["group_wait"] == "30s"
    # children inherit: none of them may shorten the interval
    for child in route["routes"]:
        assert "group_interval" not in child and "repeat_interval" not in child
    journal = route["routes"][0]
    assert journal == {"receiver": "relay-journal", "continue": True}, "catch-all journal route first"


def test_secrets_come_from_files() -> None:
    config = _config()
    text = CONFIG.read_text()
    assert "api_url:" not in text and "auth_password:" not in text and "credentials:" not in text
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["slack"]["slack_configs"][0]["api_url_file"]
    email = receivers["email-oncall"]["email_configs"][0]
    assert email["auth_password_file"] and email["send_resolved"] is True
    targets = {}
    for name, receiver in receivers.items():
        for hook in receiver.get("webhook_configs", []):
            assert hook["http_config"]["authorization"]["credentials_file"]
            assert hook["send_resolved"] is (not name.endswith("-events")), name
            targets[name] = hook["url"].split("9189", 1)[1]
    assert targets == {
        "relay-dingtalk": "/alerts/dingtalk",
        "relay-wecom": "/alerts/wecom",
        "relay-feishu": "/alerts/feishu",
        "relay-journal": "/journal",
        "relay-dingtalk-events": "/alerts/dingtalk",
        "relay-wecom-events": "/alerts/wecom",
        "relay-feishu-events": "/alerts/feishu",
    }
    assert receivers["slack-events"]["slack_configs"][0]["send_resolved"] is False
    assert receivers["email-oncall-events"]["email_configs"][0]["auth_password_file"]


def test_inhibit_rules() -> None:
    rules = _config()["inhibit_rules"]
    by_source = {tuple(r["source_matchers"]): r for r in rules}
    assert by_source[('alertname="ComfyUIExporterDown"',)]["equal"] == ["instance"]
    assert by_source[('alertname="ComfyUIDown"',)]["equal"] == ["instance", "comfyui"]
    assert by_source[('severity="critical"',)]["target_matchers"] == ['severity="warning"']
    tiers = by_source[('severity="critical"',)]
    assert tiers["equal"] == ["alertname", "instance", "comfyui", "error_type"]
    # an active event alert keeps the rule alert of the same failure class quiet (the backstop)
    event = by_source[('alertname="ComfyUIPromptFailed"',)]
    assert event["equal"] == ["comfyui", "error_type"]
    targets = 'alertname=~"ComfyUIOutOfMemory|ComfyUICudaError|ComfyUIPromptFailures"'
    assert event["target_matchers"] == [targets]
    assert by_source[('alertname="ComfyUIPromptRejected"',)]["equal"] == ["comfyui", "reason"]


def test_event_route_timing() -> None:
    """The cooldown design of docs/alerting.md: a group per cooldown window, sent after 1 s, folded
    alerts at the next tick of group_interval, which must equal --alertmanager.cooldown."""
    route = _config()["route"]
    (event,) = [r for r in route["routes"] if "ComfyUIPromptFailed" in str(r.get("matchers"))]
    assert event["group_by"] == ["alertname", "comfyui", "error_type", "event_window"]
    assert event["group_wait"] == "1s"
    assert event.get("group_interval", route["group_interval"]) == "5m"  # = --alertmanager.cooldown default
    assert "continue" not in event  # event alerts do not also take the rule routes


def test_templates_render_in_amtool() -> None:
    """amtool renders with built-in example data: the silence link is built from the group labels."""
    result = run_tool(
        "amtool",
        "template",
        "render",
        f"--template.glob={ALERTMANAGER_DIR / 'templates'}/*.tmpl",
        '--template.text={{ template "comfyui.silence_url" . }}',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "https://example.com/#/silences/new?filter=%7Bgrouplabelkey1%3D%22grouplabelvalue1%22"
        "%2Cgrouplabelkey2%3D%22grouplabelvalue2%22%7D"
    )
    for name in ("comfyui.slack.text", "comfyui.email.html", "comfyui.email.text", "comfyui.slack.title"):
        result = run_tool(
            "amtool",
            "template",
            "render",
            f"--template.glob={ALERTMANAGER_DIR / 'templates'}/*.tmpl",
            f'--template.text={{{{ template "{name}" . }}}}',
        )
        assert result.returncode == 0 and result.stdout.strip(), f"{name}: {result.stderr}"


# ------------------------------------------------------------------------------ a real Alertmanager

RELAY_TOKEN = "relay-token-for-tests"
SMTP_USER = "comfyui-alertmanager@example.com"
SMTP_PASSWORD = "smtp-password-for-tests"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Alertmanager, HTTPSink, SMTPSink]]:
    workdir = tmp_path_factory.mktemp("alertmanager")
    with HTTPSink() as http, SMTPSink(username=SMTP_USER, password=SMTP_PASSWORD) as smtp:
        config = prepare_alertmanager_config(
            workdir,
            slack_url=f"{http.url}/slack",
            smtp_address=smtp.address,
            smtp_password=SMTP_PASSWORD,
            relay_url=http.url,
            relay_token=RELAY_TOKEN,
            group_wait="1s",
            group_interval="2s",
            repeat_interval="1h",
        )
        with start_alertmanager(config, workdir) as am:
            yield am, http, smtp


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "job": "comfyui-exporter", **labels},
        "annotations": {
            "summary": f"{name} summary.",
            "description": f"{name} on {labels.get('comfyui', '-')}.",
            "runbook_url": f"https://example.com/runbooks.md#{name.lower()}",
            "dashboard_url": f"http://grafana.test/d/x?var-comfyui={labels.get('comfyui', '')}",
        },
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _slack_alerts(http: HTTPSink) -> list[str]:
    """Slack titles received so far."""
    return [r.json["attachments"][0]["title"] for r in http.requests("/slack")]


def test_inhibition_on_a_real_alertmanager(live: tuple[Alertmanager, HTTPSink, SMTPSink]) -> None:
    am, http, _ = live
    sources = [
        _alert("ComfyUIDown", "critical", instance="exp1:9188", comfyui="down"),
        _alert("ComfyUIExporterDown", "critical", instance="exp2:9188"),
        _alert("ComfyUIQueueBacklog", "critical", instance="exp1:9188", comfyui="tiers"),
    ]
    inhibited = [
        _alert("ComfyUIQueueBacklog", "warning", instance="exp1:9188", comfyui="down"),
        _alert("ComfyUIOutOfMemory", "critical", instance="exp1:9188", comfyui="down", error_type="oom"),
        _alert("ComfyUIOutOfMemory", "critical", instance="exp2:9188", comfyui="behind", error_type="oom"),
        _alert("ComfyUIQueueBacklog", "warning", instance="exp1:9188", comfyui="tiers"),
    ]
    untouched = [
        _alert("ComfyUIQueueBacklog", "warning", instance="exp1:9188", comfyui="other"),
        _alert("ComfyUIAlertRelayDown", "warning", instance="exp2:9188", job="comfyui-alert-relay"),
    ]
    am.post_alerts(sources)
    wait_until(lambda: len(am.alerts()) >= len(sources), 10, what="source alerts in Alertmanager")
    am.post_alerts(inhibited + untouched)

    def states() -> dict[tuple[str, str, str], dict[str, Any]]:
        return {
            (a["labels"]["alertname"], a["labels"].get("comfyui", ""), a["labels"]["severity"]): a["status"]
            for a in am.alerts()
        }

    wait_until(lambda: len(states()) == 9, 10, what="all alerts in Alertmanager")
    status = states()
    for alert in inhibited:
        key = (alert["labels"]["alertname"], alert["labels"].get("comfyui", ""), alert["labels"]["severity"])
        assert status[key]["state"] == "suppressed" and status[key]["inhibitedBy"], (key, status[key])
    for alert in sources + untouched:
        key = (alert["labels"]["alertname"], alert["labels"].get("comfyui", ""), alert["labels"]["severity"])
        assert status[key]["state"] == "active", (key, status[key])

    # Slack gets the four uninhibited groups (ExporterDown, Down, Backlog tiers-critical, Backlog other,
    # RelayDown) and nothing of the inhibited alerts.
    wait_until(lambda: len(_slack_alerts(http)) >= 5, 15, what="5 Slack notifications")
    time.sleep(2.5)  # one more group_interval: nothing inhibited may trickle in
    titles = _slack_alerts(http)
    assert sorted(titles) == sorted(
        [
            "[FIRING:1] CRITICAL ComfyUIDown down",
            "[FIRING:1] CRITICAL ComfyUIExporterDown",
            "[FIRING:1] CRITICAL ComfyUIQueueBacklog tiers",
            "[FIRING:1] WARNING ComfyUIQueueBacklog other",
            "[FIRING:1] WARNING ComfyUIAlertRelayDown",
        ]
    ), titles


def test_delivery_to_slack_email_and_relay(live: tuple[Alertmanager, HTTPSink, SMTPSink]) -> None:
    am, http, smtp = live
    am.post_alerts(
        [
            _alert(
                "ComfyUICudaError", "critical", instance="exp3:9188", comfyui="gpu-7", error_type="cuda_error"
            )
        ]
    )

    slack = http.wait_for(
        lambda r: r.path == "/slack" and "ComfyUICudaError" in r.body.decode(), 15, "Slack message"
    ).json
    attachment = slack["attachments"][0]
    assert slack["channel"] == "#comfyui-alerts"
    assert attachment["title"] == "[FIRING:1] CRITICAL ComfyUICudaError gpu-7 cuda_error"
    assert attachment["color"] == "danger"
    assert attachment["title_link"] == "http://grafana.test/d/x?var-comfyui=gpu-7"
    text = attachment["text"]
    for part in (
        "*Severity:* `critical`",
        "*Instance:* `gpu-7` on `exp3:9188`",
        "*Error type:* `cuda_error`",
        "ComfyUICudaError on gpu-7.",
        "<https://example.com/runbooks.md#comfyuicudaerror|Runbook>",
        "<http://grafana.test/d/x?var-comfyui=gpu-7|Dashboard>",
        f"<{am.url}/#/silences/new?filter=%7Balertname%3D%22ComfyUICudaError%22%2Ccomfyui%3D%22gpu-7%22"
        "%2Cerror_type%3D%22cuda_error%22%7D|Silence this group>",
    ):
        assert part in text, f"{part!r} not in Slack text:\n{text}"

    mail = smtp.wait_for(lambda m: "ComfyUICudaError" in m.subject, 15, "e-mail")
    assert mail.auth_login == SMTP_USER, "the SMTP password file was not used"
    assert mail.rcpt_tos == ["comfyui-oncall@example.com"]
    assert mail.subject == "[FIRING:1] CRITICAL ComfyUICudaError gpu-7 cuda_error"
    plain, html = mail.part("text/plain"), mail.part("text/html")
    for body in (plain, html):
        assert "https://example.com/runbooks.md#comfyuicudaerror" in body
        assert "http://grafana.test/d/x?var-comfyui=gpu-7" in body
        assert "cuda_error" in body and "exp3:9188" in body
    assert (
        f"{am.url}/#/silences/new?filter=%7Balertname%3D%22ComfyUICudaError%22%2Ccomfyui%3D%22gpu-7%22"
        "%2Cerror_type%3D%22cuda_error%22%7D"
    ) in plain
    assert "silences/new?filter=%7Balertname%3D%22ComfyUICudaError%22" in html

    journal = http.wait_for(
        lambda r: r.path == "/journal" and "ComfyUICudaError" in r.body.decode(), 15, "journal webhook"
    )
    assert journal.headers["authorization"] == f"Bearer {RELAY_TOKEN}"
    assert journal.json["groupLabels"] == {
        "alertname": "ComfyUICudaError",
        "comfyui": "gpu-7",
        "error_type": "cuda_error",
    }


def test_info_is_journaled_only(live: tuple[Alertmanager, HTTPSink, SMTPSink]) -> None:
    am, http, smtp = live
    am.post_alerts([_alert("ComfyUIRestarted", "info", instance="exp4:9188", comfyui="restarted")])
    http.wait_for(lambda r: r.path == "/journal" and "ComfyUIRestarted" in r.body.decode(), 15, "journal")
    time.sleep(1.5)
    assert not [r for r in http.requests() if r.path != "/journal" and b"ComfyUIRestarted" in r.body]
    assert not [m for m in smtp.messages() if "ComfyUIRestarted" in m.subject]


def test_chat_label_routes_to_the_relay_target(live: tuple[Alertmanager, HTTPSink, SMTPSink]) -> None:
    am, http, _ = live
    am.post_alerts(
        [_alert("ComfyUIPromptStuck", "warning", instance="exp5:9188", comfyui="cn", chat="dingtalk")]
    )
    hook = http.wait_for(lambda r: r.path == "/alerts/dingtalk", 15, "DingTalk webhook")
    assert hook.headers["authorization"] == f"Bearer {RELAY_TOKEN}"
    assert hook.json["commonLabels"]["chat"] == "dingtalk"
    assert not [r for r in http.requests("/slack") if b"ComfyUIPromptStuck" in r.body]


def test_prepare_config_rewrites_only_addresses_paths_and_timings(tmp_path: Path) -> None:
    path = prepare_alertmanager_config(
        tmp_path,
        slack_url="http://127.0.0.1:1/slack",
        smtp_address="127.0.0.1:2",
        smtp_password="pw",
        relay_url="http://127.0.0.1:3",
        relay_token="tok",
        group_wait="1s",
    )
    shipped, test = _config(), yaml.safe_load(path.read_text())
    assert test["route"]["group_by"] == shipped["route"]["group_by"]
    assert test["route"]["group_wait"] == "1s"
    assert test["route"]["group_interval"] == shipped["route"]["group_interval"]
    assert test["inhibit_rules"] == shipped["inhibit_rules"]
    assert [r["name"] for r in test["receivers"]] == [r["name"] for r in shipped["receivers"]]
    assert (tmp_path / "secrets" / "relay_token").read_text() == "tok"
    result = run_tool("amtool", "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
