"""Prometheus scrapes and health checks are logged at DEBUG, Alertmanager's POSTs at INFO (#14.6)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from relay_helpers import harness, payload


async def test_scrapes_and_health_checks_are_debug_posts_are_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        for _ in range(3):
            await h.metrics()
            for path in ("/-/healthy", "/-/ready"):
                async with h.session.get(f"{h.url}{path}") as r:
                    assert r.status == 200
        assert (await h.post("d", payload()))[0] == 200
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    by_level = {
        (r.levelname, p): sum(1 for x in access if x.levelname == r.levelname and f" {p} " in x.getMessage())
        for r in access
        for p in ("/metrics", "/-/healthy", "/-/ready", "/alerts/d")
    }
    assert by_level.get(("DEBUG", "/metrics")) == 3 and by_level.get(("DEBUG", "/-/ready")) == 3
    assert by_level.get(("DEBUG", "/-/healthy")) == 3
    assert by_level.get(("INFO", "/alerts/d")) == 1
    assert not any(x.levelname == "INFO" and "GET /" in x.getMessage() for x in access)
