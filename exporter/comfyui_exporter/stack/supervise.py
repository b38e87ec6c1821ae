"""Run the stack's processes: refuse busy ports, start, wait until ready, stop all with nothing left.

Every child gets ``PR_SET_PDEATHSIG`` (Linux): if the stack's own process is killed with SIGKILL,
the kernel sends the children SIGTERM, so not even that leaves orphans. A normal stop (Ctrl-C,
SIGTERM, or one child dying) sends SIGTERM to each child, waits, then SIGKILLs what is left.
"""

from __future__ import annotations

import ctypes
import errno
import queue
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover - no libc symbol table
    _LIBC = None


class PortBusy(RuntimeError):
    """A port the stack needs is taken (the message names the flag that changes it)."""


def check_ports(ports: dict[str, int]) -> None:
    """Refuse ports some other process listens on (127.0.0.1 or every address)."""
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise PortBusy(f"--{name}-port and --{seen[port]}-port are both {port}")
        seen[port] = name
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "busy"
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise PortBusy(
                    f"port {port} ({name}) on 127.0.0.1 is already in use; stop what holds it or "
                    f"choose another with --{name}-port PORT"
                ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_url: str
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.argv)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_ready(children: list[Child], timeout: float) -> None:
    """Until every child answers its ready URL; raises RuntimeError naming one that died or hung."""
    deadline = time.monotonic() + timeout
    pending = list(children)
    while pending:
        for child in list(pending):
            if not child.alive():
                raise RuntimeError(
                    f"{child.name} exited at start; its log ({child.log}):\n{child.log_tail()}"
                )
            if child.ready():
                pending.remove(child)
        if pending and time.monotonic() > deadline:
            names = ", ".join(c.name for c in pending)
            raise RuntimeError(f"not ready after {timeout:.0f} s: {names}; logs in {pending[0].log.parent}")
        time.sleep(0.1)


def stop_all(children: list[Child], grace: float = 10.0) -> None:
    """SIGTERM every child (last started first), wait up to ``grace`` s, then SIGKILL the rest."""
    for child in reversed(children):
        if child.alive():
            assert child.process is not None
            child.process.terminate()
    deadline = time.monotonic() + grace
    for child in reversed(children):
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(5)


def run_until_stopped(children: list[Child]) -> int:
    """Block until SIGINT/SIGTERM (exit 0) or until a child exits on its own (exit 1)."""
    received: queue.SimpleQueue[int] = queue.SimpleQueue()  # put() is safe in a signal handler

    def on_signal(signum: int, _frame: object) -> None:
        received.put(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                received.get(timeout=0.5)
                break
            except queue.Empty:
                pass
            dead = [c for c in children if not c.alive()]
            if dead:
                code = dead[0].process.returncode if dead[0].process else None
                print(f"{dead[0].name} exited (rc {code}); stopping the stack. Its log:", file=sys.stderr)
                print(dead[0].log_tail(), file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping: " + ", ".join(c.name for c in reversed(children)), flush=True)
        stop_all(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
