"""Section 7 — the relay under a burst: 200 alerts to one DingTalk robot (limit 20 messages/minute).

Why: a failing batch on a farm produces hundreds of alert groups at once. DingTalk bans a robot for
10 minutes after its 21st message in a minute, so the relay must merge — and must not lose any
alert while doing so. 200 Alertmanager webhook notifications (one alert each, distinct groups, the
shape Alertmanager 0.25 posts) arrive within about a second; a notification the relay answers with
503 is retried the way Alertmanager does. Measured: robot messages and the most in any sliding
minute, robot rejections, time until every notification is delivered or merged (its own journal
``delivered`` record, naming a message the robot accepted), and lost notifications.

The full run uses the real one-minute window; ``--smoke`` compresses the relay's and the robot's
minute to 3 s (the relay tests' ``rate_window_scale``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from comfyui_exporter.relay.threaded import RelayStack

from .common import SectionResult, Table, Target, ensure_paths

ensure_paths()

ALERTS = 200


def notification(i: int) -> dict[str, Any]:
    """One Alertmanager v4 webhook body with one firing alert in its own group."""
    labels = {
        "alertname": "ComfyUIPromptFailures",
        "severity": "warning",
        "comfyui": f"node-{i:03d}",
        "error_type": "node_exception",
        "instance": "127.0.0.1:9188",
        "job": "comfyui-exporter",
        "chat": "dingtalk",
    }
    group = {"alertname": labels["alertname"], "comfyui": labels["comfyui"], "error_type": "node_exception"}
    return {
        "version": "4",
        "status": "firing",
        "receiver": "relay-dingtalk",
        "groupKey": '{}/{severity=~"critical|warning"}:' + json.dumps(group),
        "truncatedAlerts": 0,
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": {"summary": "A ComfyUI prompt failed."},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": "A ComfyUI prompt failed.",
                    "description": f"ComfyUI node-{i:03d}: about 1 prompt(s) failed with error_type "
                    "node_exception.",
                },
                "startsAt": datetime.now(UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"{i:016x}",
            }
        ],
    }


async def _burst(stack: RelayStack, spread_s: float) -> list[tuple[int, float, dict[str, Any]]]:
    """POST every notification (spread over ``spread_s``), retrying 5xx like Alertmanager does."""
    import aiohttp

    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
    t0 = time.monotonic()

    async def one(session: aiohttp.ClientSession, i: int) -> tuple[int, float, dict[str, Any]]:
        await asyncio.sleep(i * spread_s / ALERTS)
        body = json.dumps(notification(i))
        backoff = 0.5
        while True:
            async with session.post(f"{stack.url}/alerts/{stack.target}", data=body, headers=headers) as r:
                text = await r.text()
                if r.status < 500:
                    return r.status, time.monotonic() - t0, json.loads(text) if text.startswith("{") else {}
            await asyncio.sleep(backoff)  # Alertmanager retries with backoff until its timeout
            backoff = min(backoff * 2, 10)

    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await asyncio.gather(*(one(session, i) for i in range(ALERTS)))


def run(smoke: bool = False, log: Callable[[str], None] = print) -> SectionResult:
    from comfyui_exporter.relay.journal import read_journal

    scale = 0.05 if smoke else 1.0
    minute = 60.0 * scale
    result = SectionResult("relay", "7. Relay burst")
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    stack = RelayStack(workdir, "bench-relay-token", scale=scale).start()
    try:
        log(f"  [relay] {ALERTS} notifications to one DingTalk robot (minute = {minute:g} s)")
        t_start = time.time()
        answers = stack.call(_burst(stack, spread_s=1.0), timeout=3600)
        accepted = stack.accepted()
        rejected = stack.rejected()
        journal = read_journal(stack.relay.journal.path)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    statuses = [s for s, _, _ in answers]
    delivered = {r["id"]: r for r in journal if r.get("event") == "delivered"}
    texts = "\n".join(m.text for m in accepted)
    lost = 0
    for status, _, answer in answers:
        record = delivered.get(answer.get("id"))
        if status != 200 or record is None or f"ref {record.get('ref')}" not in texts:
            lost += 1
    merged = sum(1 for r in delivered.values() if r.get("merged_with"))
    named = sum(1 for i in range(ALERTS) if f"node-{i:03d}" in texts)
    times = sorted(m.at - t_start for m in accepted)
    most_in_minute = max((sum(1 for t in times if a <= t < a + minute) for a in times), default=0)
    all_done = max(t for _, t, _ in answers)

    table = Table(
        f"{ALERTS} notifications (one alert each) within 1 s to one DingTalk target "
        f"(robot limit 20 messages per {minute:g} s window)",
        ["measure", "value"],
    )
    table.rows += [
        ["robot messages sent (accepted)", str(len(accepted))],
        [f"most messages in any {minute:g} s window", f"{most_in_minute} (limit 20)"],
        ["robot rejections (e.g. 130101 send too fast)", str(len(rejected))],
        ["time until every notification was delivered or merged", f"{all_done:.1f} s"],
        ["notifications merged into a shared message", str(merged)],
        ["alerts named in message text (others counted + journaled)", str(named)],
        ["notifications lost (no delivered record naming an accepted message)", str(lost)],
        [
            "HTTP answers to Alertmanager",
            ", ".join(f"{s}×{statuses.count(s)}" for s in sorted(set(statuses))),
        ],
    ]
    result.tables.append(table)
    result.numbers.update(
        messages=len(accepted),
        most_in_minute=most_in_minute,
        rejected=len(rejected),
        all_delivered_s=all_done,
        merged=merged,
        lost=lost,
    )
    result.notes.append(
        "Relay and fake robot in-process (comfyui_exporter.relay.server.Relay, comfyui_exporter.relay."
        "testing.FakeRobots: signing, keyword, size and the 20/min limit enforced as DingTalk does)."
        + (" Smoke run: the minute is compressed 20×." if smoke else "")
    )
    result.targets.append(
        Target(
            "relay burst: ≤ 20 messages/min, none lost",
            "≤ 20 per minute, 0 lost, 0 rejected",
            f"{most_in_minute} in the busiest minute, {lost} lost, {len(rejected)} rejected",
            most_in_minute <= 20 and lost == 0 and not rejected,
        )
    )
    result.headlines.append(
        f"Relay: a burst of {ALERTS} alerts became {len(accepted)} DingTalk messages "
        f"(at most {most_in_minute} in any robot minute), all delivered or merged after {all_done:.1f} s, "
        f"{lost} lost"
    )
    return result
