"""``comfyui-alert-relay`` as a process: one config file, --check-config, SIGHUP reload, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml
from relay_am import free_port
from relay_helpers import payload

import comfyui_exporter
from comfyui_exporter.relay.testing import FakeRobots, write_relay_config

PACKAGE_ROOT = str(Path(comfyui_exporter.__file__).resolve().parent.parent)
SECRET = "SECclisecret0000000001"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_check_config(tmp_path: Path) -> None:
    path, _ = write_relay_config(
        tmp_path,
        {
            "d": {
                "type": "dingtalk",
                "url": "https://x/robot/send?access_token=clitoken00000000000001",
                "secret": SECRET,
            }
        },
    )
    cmd = [sys.executable, "-m", "comfyui_exporter.relay", "--config", str(path), "--check-config"]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=30)
    assert ok.returncode == 0 and "config OK: 1 target(s): d" in ok.stdout
    cfg = yaml.safe_load(path.read_text())
    cfg["targets"]["d"]["mention"] = {"mobile": ["138"]}
    path.write_text(yaml.safe_dump(cfg))
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=30)
    assert (
        bad.returncode == 2 and "targets.d.mention.mobile: unknown key (did you mean mobiles?)" in bad.stderr
    )
    assert SECRET not in bad.stderr + bad.stdout and "clitoken" not in bad.stderr


async def test_process_serves_reloads_on_sighup_and_stops(tmp_path: Path) -> None:
    async with FakeRobots() as robots:
        port = free_port()
        path, token = write_relay_config(
            tmp_path,
            {"d": {"type": "dingtalk", "url": robots.dingtalk(secret=SECRET), "secret": SECRET}},
            listen=f"127.0.0.1:{port}",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "comfyui_exporter.relay",
            "--config",
            str(path),
            "--log-level",
            "debug",
            env=env(),
            stderr=asyncio.subprocess.PIPE,
        )
        url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        try:
            async with aiohttp.ClientSession() as s:

                async def status(target: str) -> int:
                    async with s.post(f"{url}/alerts/{target}", json=payload(), headers=headers) as r:
                        return r.status

                for _ in range(100):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with s.get(f"{url}/-/ready") as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.1)
                assert await status("d") == 200 and await status("w") == 404
                cfg = yaml.safe_load(path.read_text())
                (tmp_path / "w.url").write_text(robots.wecom())
                cfg["targets"]["w"] = {"type": "wecom", "url_file": str(tmp_path / "w.url")}
                path.write_text(yaml.safe_dump(cfg))
                proc.send_signal(signal.SIGHUP)
                for _ in range(50):
                    if await status("w") == 200:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("SIGHUP did not add the target")
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        log = stderr.decode()
        assert proc.returncode == 0, log[-2000:]
        assert "config reloaded: targets d, w" in log and len(robots.accepted()) == 2
        for secret in [SECRET, token, *robots.robots]:
            assert secret not in log
