"""``./scripts/run --demo`` (the exporter alone + the simulator): the simulator takes a free port and
the exporter watches it, so a real ComfyUI on 127.0.0.1:8188 is never watched; ``--demo`` may come
after other flags; Ctrl-C (SIGINT to the process group) ends both."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.stack.test_stack_e2e import session_processes
from tests.support.binaries import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_demo_uses_a_free_port_not_8188(tmp_path: Path) -> None:
    holder = socket.socket()
    with contextlib.suppress(OSError):  # stand in for a real ComfyUI on 8188 when nothing holds it
        holder.bind(("127.0.0.1", 8188))
        holder.listen()
    port = free_port()
    out = tmp_path / "run.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["./scripts/run", "--listen", f"127.0.0.1:{port}", "--no-gpu", "--demo"],
            cwd=REPO,
            env={**os.environ, "VENV": sys.prefix},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        metrics = f"http://127.0.0.1:{port}/metrics"
        wait_until(
            lambda: 'comfyui_up{comfyui="comfyui"} 1.0' in requests.get(metrics, timeout=2).text,
            30,
            what="the exporter watching the simulator",
        )
        exporter = next(line for line in session_processes(proc.pid) if "comfyui-exporter " in line + " ")
        sim_port = int(re.search(r"comfyui=http://127\.0\.0\.1:(\d+)", exporter).group(1))  # type: ignore[union-attr]
        assert sim_port != 8188
        assert any(f"--listen 127.0.0.1:{sim_port}" in line for line in session_processes(proc.pid))
    finally:
        holder.close()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(20)
    deadline = time.monotonic() + 10
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session_processes(proc.pid), out.read_text()
