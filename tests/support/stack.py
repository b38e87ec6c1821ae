"""Run the real exporter as a subprocess on loopback and read its /metrics like Prometheus would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> object:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}: {last_error}")


class ExporterProcess:
    def __init__(
        self, args: Sequence[str], port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix="exporter-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ExporterProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO / "exporter"), **(self.env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "comfyui_exporter", "--listen", f"127.0.0.1:{self.port}", *self.args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_until(
            lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200,
            15,
            what="exporter ready",
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> float:
        """Stop it and return how long it took (SIGTERM must end it within 2 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - started

    def logs(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def metrics_text(self) -> str:
        return requests.get(self.url + "/metrics", timeout=5).text

    def samples(self) -> dict[tuple[str, frozenset], float]:
        out = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, frozenset(labels.items())))

    def failures(self, **filters: str) -> list[dict]:
        return requests.get(self.url + "/failures", params=filters, timeout=5).json()["failures"]


@contextmanager
def running_exporter(*args: str, env: dict[str, str] | None = None) -> Iterator[ExporterProcess]:
    exporter = ExporterProcess(["--no-gpu", *args], env=env).start()
    try:
        yield exporter
    finally:
        exporter.stop()
        Path(exporter.log.name).unlink(missing_ok=True)
