"""Run the real Alertmanager (0.25, Debian: /usr/bin/prometheus-alertmanager) on 127.0.0.1 for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.binaries import require_binary


def alertmanager_binary() -> str:
    """The shared lookup (``ALERTMANAGER_BIN`` or PATH): skips by hand, fails under CI=true."""
    return require_binary("alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Alertmanager:
    url: str
    session: aiohttp.ClientSession
    log_path: Path

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        async with self.session.post(f"{self.url}/api/v2/alerts", json=alerts) as resp:
            assert resp.status == 200, await resp.text()

    async def metric(self, name: str, **labels: str) -> float:
        async with self.session.get(f"{self.url}/metrics") as resp:
            text = await resp.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def am_alert(name: str, *, resolved: bool = False, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    alert = {
        "labels": {"alertname": name, "severity": "critical", "comfyui": "gpu-box-1", **labels},
        "annotations": {"summary": f"{name} on gpu-box-1", "runbook_url": "https://runbooks.example/x"},
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
    }
    alert["endsAt" if resolved else "startsAt"] = now
    return alert


@contextlib.asynccontextmanager
async def alertmanager(
    tmp_path: Path, relay_url: str, token_file: Path, targets: list[str], group_interval: str = "1s"
) -> AsyncIterator[Alertmanager]:
    binary = alertmanager_binary()
    port = free_port()
    config = {
        "route": {
            "receiver": "relay",
            "group_by": ["alertname", "comfyui"],
            "group_wait": "100ms",
            "group_interval": group_interval,
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "relay",
                "webhook_configs": [
                    {
                        "url": f"{relay_url}/alerts/{t}",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials_file": str(token_file)}},
                    }
                    for t in targets
                ],
            }
        ],
    }
    am_dir = tmp_path / "am"
    am_dir.mkdir()
    (am_dir / "am.yml").write_text(yaml.safe_dump(config))
    log_path = am_dir / "am.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={am_dir / 'am.yml'}",
                f"--storage.path={am_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                f"--web.external-url=http://127.0.0.1:{port}",
                "--log.level=debug",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession()
    try:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        break
            if proc.poll() is not None:
                raise AssertionError(f"alertmanager exited: {log_path.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("alertmanager not ready after 10 s")
        yield Alertmanager(url, session, log_path)
    finally:
        await session.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
