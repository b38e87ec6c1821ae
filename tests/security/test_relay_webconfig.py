"""The relay with ``web_config_file``: TLS for everything, basic auth on the GET endpoints, and the
Alertmanager webhook still authenticated by the relay's bearer token (one Authorization header)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import aiohttp

from tests.relay.relay_helpers import alert, harness, payload

from .conftest import PASSWORD, tls_block, write_config
from .pki import PKI


def test_relay_serves_tls_basic_auth_on_gets_and_bearer_on_posts(
    tmp_path: Path, pki: PKI, hashed: str
) -> None:
    web = write_config(tmp_path / "web.yml", tls_block(pki) + f"basic_auth_users:\n  prometheus: {hashed}\n")

    async def scenario() -> None:
        async with harness(tmp_path, web_config_file=str(web)) as h:
            https = h.url.replace("http://", "https://")
            context = ssl.create_default_context(cafile=str(pki.ca.cert))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
                async with session.get(https + "/metrics") as resp:
                    assert resp.status == 401
                login = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
                async with session.get(
                    https + "/metrics", headers={"Authorization": f"Basic {login}"}
                ) as resp:
                    assert (
                        resp.status == 200 and "comfyui_alert_relay_notifications_total" in await resp.text()
                    )
                body = payload(alert("ComfyUIOutOfMemory"))
                bearer = {"Authorization": f"Bearer {h.token}"}
                async with session.post(https + "/alerts/ops-dingtalk", json=body, headers=bearer) as resp:
                    assert resp.status == 200, await resp.text()
                async with session.post(https + "/alerts/ops-dingtalk", json=body) as resp:
                    assert resp.status == 401  # the bearer token is still required on POSTs
            async with aiohttp.ClientSession() as plain:  # no plain HTTP next to TLS
                try:
                    async with plain.get(h.url + "/-/healthy") as resp:
                        raise AssertionError(f"plain HTTP answered {resp.status}")
                except aiohttp.ClientError:
                    pass

    asyncio.run(scenario())
