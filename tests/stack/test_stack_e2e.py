"""``./scripts/run --stack --demo`` on the real Prometheus and Alertmanager binaries, as a user runs it.

One run, shared by nothing else (about 25 s): the stack starts its processes, the demo's opening OOM
reaches the local notification log and a fake DingTalk robot that checks the signature as DingTalk
does, and SIGINT to the process group (what Ctrl-C sends) leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyui_exporter.relay.testing import FakeRobots
from tests.support.binaries import free_port, require_binary, wait_until

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


class RobotsThread:
    """FakeRobots on their own event loop in a thread (the test itself is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.robots = FakeRobots()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeRobots:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.robots.start(), self.loop).result(10)
        return self.robots

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.robots.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def session_processes(sid: int) -> list[str]:
    """``pid command`` of every live process in session ``sid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                out.append(f"{entry.name} {command[:160]}")
        except (OSError, ValueError):
            continue
    return out


@pytest.fixture()
def robots() -> Iterator[FakeRobots]:
    with RobotsThread() as robots:
        yield robots


def test_stack_demo_failure_reaches_local_log_and_dingtalk_then_ctrl_c_leaves_nothing(
    tmp_path: Path, robots: FakeRobots
) -> None:
    require_binary("prometheus")
    require_binary("alertmanager")
    secret = "SEC-test-only-not-a-robot-secret"
    url = robots.dingtalk(secret=secret)
    ports = {name: free_port() for name in ("exporter", "prometheus", "alertmanager", "relay", "notify")}
    state = tmp_path / "state"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COMFYUI_STACK_")},
        "VENV": sys.prefix,  # use this test's environment as it is (no pip run)
        "COMFYUI_STACK_DINGTALK_URL": url,
        "COMFYUI_STACK_DINGTALK_SECRET": secret,
    }
    argv = ["./scripts/run", "--stack", "--state-dir", str(state), "--demo"]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    out_path = tmp_path / "stack.out"
    started = time.monotonic()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: "stack up in" in out_path.read_text() or proc.poll() is not None, 60, what="stack up"
        )
        assert proc.poll() is None, out_path.read_text()
        up_s = time.monotonic() - started
        running = session_processes(proc.pid)
        for name in (
            "prometheus",
            "prometheus-alertmanager",
            "comfyui_exporter.relay",
            "comfyui_exporter.sim",
        ):
            assert any(name in line for line in running), (name, running)
        assert any("-m comfyui_exporter --listen" in line for line in running), running

        log = state / "notifications.log"
        # The event path is on: the OOM arrives as the exporter's event alert (its rule alert,
        # ComfyUIOutOfMemory, is inhibited while the event alert is active).
        wait_until(
            lambda: "ComfyUIPromptFailed" in log.read_text() and "oom" in log.read_text(),
            90,
            what="the OOM event alert in the local log",
        )
        first_s = time.monotonic() - started
        text = log.read_text()
        assert f"http://127.0.0.1:{ports['exporter']}/failures" in text  # a link a browser here opens
        got = wait_until(
            lambda: [r for r in robots.accepted("dingtalk") if "OutOfMemory" in r.text + r.title],
            30,
            what="the OOM at the fake DingTalk robot",
        )
        assert got and not robots.rejected("dingtalk"), robots.rejected("dingtalk")
        print(f"\nstack up {up_s:.1f} s; first failure in the local log {first_s:.1f} s after the command")
    finally:
        stopping = time.monotonic()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        rc = proc.wait(30)
    stop_s = time.monotonic() - stopping
    wait_until(lambda: not session_processes(proc.pid), 10, what="no process left")
    assert rc == 0, out_path.read_text()
    assert "stopping:" in out_path.read_text()
    # every process stopped on its signal, before the stack's 10 s grace would have SIGKILLed it
    assert stop_s < 9.5, stop_s
    print(f"Ctrl-C to nothing left: {stop_s:.1f} s")
