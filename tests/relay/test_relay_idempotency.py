"""Idempotency (#15.2): a notification already delivered is answered 200 without a second robot
message: posted twice, across a relay restart, after a kill -9 that lost the answer, or twice at the
same moment (two Alertmanager peers). A notification that was only partly delivered is retried."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from relay_am import free_port
from relay_cli_env import relay_env
from relay_helpers import alert, harness, metric_value, payload

from comfyui_exporter.relay.journal import read_journal
from comfyui_exporter.relay.testing import FakeRobots, write_relay_config

DUP = "comfyui_alert_relay_duplicate_notifications_total"
TOKEN = "idempotencytoken000000000001"


def _oom() -> dict:
    return payload(alert(fingerprint="fp-idem-1"), group={"alertname": "ComfyUIOutOfMemory"})


async def test_same_webhook_twice_is_one_robot_message(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        first = await h.post("d", _oom())
        second = await h.post("d", _oom())
        assert first[0] == second[0] == 200
        assert second[1]["status"] == "duplicate" and second[1]["ref"] == first[1]["ref"]
        assert len(h.robots.accepted()) == 1
        assert metric_value(await h.metrics(), DUP, target="d") == 1
        assert len(h.events("duplicate")) == 1


async def test_two_peers_at_the_same_moment_are_one_robot_message(tmp_path: Path) -> None:
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        answers = await asyncio.gather(*(h.post("d", _oom()) for _ in range(3)))
        assert [s for s, _ in answers] == [200] * 3
        assert len(h.robots.accepted()) == 1
        assert sorted(a["status"] for _, a in answers) == ["delivered", "duplicate", "duplicate"]


async def test_restart_between_the_two_posts_still_one_message(tmp_path: Path) -> None:
    async with FakeRobots() as robots:
        target = {"d": {"type": "dingtalk", "robot": {"token": TOKEN}}}
        async with harness(tmp_path, target, robots=robots) as h:
            assert (await h.post("d", _oom()))[0] == 200
        async with harness(tmp_path, target, robots=robots) as h:  # a new relay, the same journal
            status, answer = await h.post("d", _oom())
            assert status == 200 and answer["status"] == "duplicate"
            assert metric_value(await h.metrics(), DUP, target="d") == 1
        assert len(robots.accepted()) == 1


async def test_new_state_of_the_same_alerts_is_delivered(tmp_path: Path) -> None:
    """Not duplicates: the group resolves, the same alert fires again (new startsAt), a second alert."""
    async with harness(tmp_path, {"d": {"type": "dingtalk"}}) as h:
        fired = _oom()
        resolved = payload(alert(fingerprint="fp-idem-1", status="resolved"), group=fired["groupLabels"])
        refired = copy.deepcopy(fired)
        refired["alerts"][0]["startsAt"] = "2026-11-28T02:30:00Z"
        grown = copy.deepcopy(fired)
        grown["alerts"].append(alert(comfyui="gpu-box-2", fingerprint="fp-idem-2"))
        for body in (fired, resolved, refired, grown):
            status, answer = await h.post("d", body)
            assert status == 200 and answer["status"] == "delivered", answer
        assert len(h.robots.accepted()) == 4
        assert metric_value(await h.metrics(), DUP, target="d") == 0
        # the same webhook to another target is not a duplicate either
    async with harness(tmp_path / "two", {"a": {"type": "dingtalk"}, "b": {"type": "wecom"}}) as h:
        assert (await h.post("a", _oom()))[1]["status"] == "delivered"
        assert (await h.post("b", _oom()))[1]["status"] == "delivered"


async def test_partly_delivered_notification_is_retried_not_taken_for_a_duplicate(tmp_path: Path) -> None:
    fast = {"deadline_seconds": 1.0, "attempt_timeout_seconds": 0.5, "backoff_initial_seconds": 0.05}
    async with harness(tmp_path, {"w": {"type": "wecom"}}, delivery=fast, scale=0.05) as h:
        url = h.relay.config.targets["w"].url.reveal()
        h.robots.inject(url, 0, "ok")  # part 1 of 3 accepted, then the robot refuses part 2
        h.robots.inject(url, 40058, "markdown.content exceed max length 4096")
        body = payload(alert(description="显存不足🔥" * 700, fingerprint="fp-split"))
        assert (await h.post("w", body))[0] == 500  # Alertmanager retries 5xx
        status, answer = await h.post("w", body)  # the retry: delivers the rest, parts 2 and 3
        assert status == 200 and answer["status"] == "delivered", answer
        assert sum(1 for r in h.robots.accepted() if r.text.startswith("(")) == 3
        status, answer = await h.post("w", body)  # now it is a duplicate
        assert status == 200 and answer["status"] == "duplicate"
        assert sum(1 for r in h.robots.accepted() if r.text.startswith("(")) == 3
        assert metric_value(await h.metrics(), DUP, target="w") == 1


async def test_kill_9_after_delivery_before_the_answer_then_retry_is_one_message(tmp_path: Path) -> None:
    """Alertmanager's request reaches the relay, the robot accepts, the relay is killed (-9) before
    Alertmanager reads its answer; Alertmanager retries against the restarted relay."""
    async with FakeRobots() as robots:
        port = free_port()
        path, token = write_relay_config(
            tmp_path, {"d": {"type": "dingtalk", "url": robots.dingtalk()}}, listen=f"127.0.0.1:{port}"
        )
        url = f"http://127.0.0.1:{port}"
        body = json.dumps(_oom()).encode()

        async def start() -> asyncio.subprocess.Process:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "comfyui_exporter.relay",
                "--config",
                str(path),
                env=relay_env(),
                stderr=asyncio.subprocess.DEVNULL,
            )
            async with aiohttp.ClientSession() as s:
                for _ in range(600):  # up to 30 s on a loaded machine
                    with contextlib.suppress(aiohttp.ClientError):
                        async with s.get(f"{url}/-/ready") as r:
                            if r.status == 200:
                                return proc
                    await asyncio.sleep(0.05)
            raise AssertionError("relay did not start")

        proc = await start()
        try:
            # Alertmanager's request, whose answer is never read.
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                f"POST /alerts/d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            journal = tmp_path / "journal.jsonl"
            for _ in range(750):  # up to 15 s on a loaded machine
                if any(r["event"] == "delivered" for r in read_journal(journal)):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the relay never journaled the delivery")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            sock.close()
            assert len(robots.accepted()) == 1
            proc = await start()
            async with aiohttp.ClientSession() as s:
                headers = {"Authorization": f"Bearer {token}"}
                async with s.post(f"{url}/alerts/d", data=body, headers=headers) as r:
                    assert r.status == 200 and (await r.json())["status"] == "duplicate"
                async with s.get(f"{url}/metrics") as r:
                    assert metric_value(await r.text(), DUP, target="d") == 1
            assert len(robots.accepted()) == 1
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_parts_accepted_before_a_restart_are_not_sent_again(tmp_path: Path) -> None:
    async with FakeRobots(rate_window_scale=0.05) as robots:
        target = {"w": {"type": "wecom", "robot": {"key": "wecomidem-key-000111222"}}}
        body = payload(alert(description="显存不足🔥" * 700, fingerprint="fp-split-restart"))
        async with harness(tmp_path, target, robots=robots, scale=0.05) as h:
            url = h.relay.config.targets["w"].url.reveal()
            robots.inject(url, 0, "ok")
            robots.inject(url, 40058, "markdown.content exceed max length 4096")
            assert (await h.post("w", body))[0] == 500
        async with harness(tmp_path, target, robots=robots, scale=0.05) as h:
            status, answer = await h.post("w", body)
            assert status == 200 and answer["status"] == "delivered", answer
        numbered = [r.text for r in robots.accepted() if r.text.startswith("(")]
        assert len(numbered) == 3 and sum(1 for t in numbered if t.startswith("(1/")) == 1, numbered
