"""Test helper: run the simulator as a subprocess and drive its control API.

A subprocess (not an in-process server) so tests exercise the real console entry point, can
``kill -9`` it like a crashed ComfyUI, and never share an event loop with the code under test.
Only the standard library is used on the client side.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_PKG_ROOT = str(Path(__file__).resolve().parents[2])  # .../exporter


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_args(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, list | tuple):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


class SimHandle:
    """A running simulator subprocess on a fixed 127.0.0.1 port."""

    def __init__(self, port: int, options: dict[str, Any], start_timeout: float = 15.0) -> None:
        self.port = port
        self.host = "127.0.0.1"
        self.url = f"http://{self.host}:{port}"
        self.ws_url = f"ws://{self.host}:{port}/ws"
        self.options = dict(options)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    # -- process control ------------------------------------------------------------------------
    def start(self) -> SimHandle:
        """(Re)start the process on the same port and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        env = dict(os.environ)
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [
            sys.executable,
            "-m",
            "comfyui_exporter.sim",
            "--listen",
            f"{self.host}:{self.port}",
            *_cli_args(self.options),
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.wait_ready(self.start_timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"simulator exited with {self.proc.returncode}: {err}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.url + "/prompt", timeout=1.0) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"simulator on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """SIGKILL the process (a crash: no goodbye on any socket)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """Graceful stop (SIGTERM, then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()

    # -- HTTP helpers ---------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        """Send a request; returns ``(status, parsed JSON or text or None)``."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body}")
        return body

    def enqueue(
        self,
        outcome: str = "success",
        client_id: str | None = None,
        seconds: float = 0.0,
        progress_steps: int = 0,
        workflow_kb: float = 0,
        count: int = 1,
        **extra: Any,
    ) -> list[str]:
        """POST /_sim/enqueue; returns the prompt ids."""
        body = {
            "outcome": outcome,
            "client_id": client_id,
            "seconds": seconds,
            "progress_steps": progress_steps,
            "workflow_kb": workflow_kb,
            "count": count,
            **extra,
        }
        status, out = self.request("POST", "/_sim/enqueue", body)
        if status != 200:
            raise RuntimeError(f"enqueue failed: {status} {out}")
        return list(out["prompt_ids"])

    def restart(self, down_seconds: float = 0.0, wait: bool = True) -> None:
        """POST /_sim/restart; with ``wait`` block until the new 'process' answers."""
        self.request("POST", "/_sim/restart", {"down_seconds": down_seconds})
        if wait:
            time.sleep(0.1 + down_seconds)
            self.wait_ready(self.start_timeout)

    def faults(self, **faults: Any) -> dict[str, Any]:
        """POST /_sim/faults (delay_ms=, status=, malformed=, oversize_bytes=, drop_websockets=)."""
        return self.request("POST", "/_sim/faults", faults)[1]

    def clear_faults(self) -> None:
        self.request("DELETE", "/_sim/faults")

    def stats(self) -> dict[str, Any]:
        return self.get("/_sim/stats")

    def outcomes(self) -> dict[str, Any]:
        return self.get("/_sim/outcomes")

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is pending or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/prompt")["exec_info"]["queue_remaining"] == 0:
                return
            time.sleep(0.02)
        raise TimeoutError("simulator queue did not drain")


@contextlib.contextmanager
def running_sim(port: int | None = None, start_timeout: float = 15.0, **options: Any) -> Iterator[SimHandle]:
    """Start ``comfyui-exporter-sim`` with CLI ``options``, e.g. ``scenario="demo"``, ``no_jobs_api=True``."""
    handle = SimHandle(port or free_port(), options, start_timeout)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
