"""Shared pieces for the relay tests: a relay + fake robots harness and payload builders."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from comfyui_exporter.relay.config import load_config
from comfyui_exporter.relay.journal import read_journal
from comfyui_exporter.relay.server import Relay
from comfyui_exporter.relay.testing import FakeRobots, write_relay_config

FIXTURES = Path(__file__).with_name("fixtures")


def captured(status: str) -> dict[str, Any]:
    """A payload captured from the real Alertmanager 0.25.0 (see fixtures/)."""
    return json.loads((FIXTURES / f"alertmanager-0.25.0-{status}.json").read_text())


def alert(
    name: str = "ComfyUIOutOfMemory",
    *,
    status: str = "firing",
    severity: str = "critical",
    comfyui: str = "gpu-box-1",
    error_type: str = "oom",
    summary: str = "Out of memory",
    description: str = "",
    fingerprint: str = "",
    **annotations: str,
) -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "comfyui": comfyui}
    if error_type:
        labels["error_type"] = error_type
    ann = {"summary": summary, **annotations}
    if description:
        ann["description"] = description
    return {
        "status": status,
        "labels": labels,
        "annotations": ann,
        "startsAt": "2026-11-28T02:03:04.123456789Z",
        "endsAt": "2026-11-28T03:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint or f"fp-{name}",
    }


def payload(
    *alerts: dict[str, Any], group: dict[str, str] | None = None, external: str = "http://am.example:9093"
) -> dict[str, Any]:
    alerts = alerts or (alert(),)
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    group = group if group is not None else {"alertname": alerts[0]["labels"]["alertname"]}
    return {
        "version": "4",
        "status": status,
        "receiver": "relay",
        "groupKey": "{}:" + json.dumps(group),
        "truncatedAlerts": 0,
        "groupLabels": group,
        "commonLabels": dict(alerts[0]["labels"]),
        "commonAnnotations": {},
        "externalURL": external,
        "alerts": list(alerts),
    }


@dataclass
class Harness:
    relay: Relay
    robots: FakeRobots
    url: str
    token: str
    config_path: Path
    session: aiohttp.ClientSession

    @property
    def journal(self) -> list[dict[str, Any]]:
        return read_journal(self.relay.journal.path)

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.journal if r["event"] == event]

    async def post(
        self, target: str, body: Any, token: str | None = None, path: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes | str) else json.dumps(body, ensure_ascii=False)
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        async with self.session.post(
            f"{self.url}{path or '/alerts/' + target}", data=data, headers=headers
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, {"text": text}

    async def metrics(self) -> str:
        async with self.session.get(f"{self.url}/metrics") as resp:
            return await resp.text()


def metric_value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if want else " ")) or (
            want and line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not in metrics")


@contextlib.asynccontextmanager
async def harness(
    tmp_path: Path,
    targets: dict[str, dict[str, Any]] | None = None,
    *,
    scale: float = 1.0,
    robots: FakeRobots | None = None,
    relay_kwargs: dict[str, Any] | None = None,
    **top: Any,
) -> AsyncIterator[Harness]:
    """Fake robots + a relay on 127.0.0.1 wired to them. ``targets`` values may use the robot kinds
    ``{"type": "dingtalk", "robot": {"secret": ..., "keyword": ...}, ...}``: the robot is created and its
    URL (and secret) filled in."""
    own = robots is None
    robots = robots or FakeRobots(rate_window_scale=scale)
    if own:
        await robots.start()
    targets = targets or {"ops-dingtalk": {"type": "dingtalk", "robot": {"secret": "SECdingsecret0001"}}}
    specs = {}
    for name, spec in targets.items():
        spec = dict(spec)
        robot = spec.pop("robot", {})
        if "url" not in spec:
            make = getattr(robots, spec["type"])
            spec["url"] = make(**robot)
            if robot.get("secret") and "secret" not in spec:
                spec["secret"] = robot["secret"]
        specs[name] = spec
    top.setdefault("timezone", "Asia/Shanghai")
    path, token = write_relay_config(tmp_path, specs, **top)
    relay = Relay(load_config(path), config_path=path, rate_window_scale=scale, **(relay_kwargs or {}))
    _, port = await relay.start("127.0.0.1", 0)
    session = aiohttp.ClientSession()
    try:
        yield Harness(relay, robots, f"http://127.0.0.1:{port}", token, path, session)
    finally:
        await session.close()
        await relay.stop()
        if own:
            await robots.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
