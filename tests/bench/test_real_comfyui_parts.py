"""The real-ComfyUI bench's own parts, without a ComfyUI: /proc CPU reading, the byte relay, and
writing only its own block of RESULTS.md (the rest of the file is the simulator run's)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench_package() -> str:
    """The repository's bench/ under another name: in this folder ``bench`` is tests/bench itself."""
    name = "bench_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, REPO / "bench" / "__init__.py", submodule_search_locations=[str(REPO / "bench")]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return name


_pkg = _bench_package()
ByteProxy = importlib.import_module(f"{_pkg}.byteproxy").ByteProxy
_common = importlib.import_module(f"{_pkg}.common")
SectionResult, Table = _common.SectionResult, _common.Table
_real = importlib.import_module(f"{_pkg}.real_comfyui")
HEADING, proc_cpu, write_section = _real.HEADING, _real.proc_cpu, _real.write_section


def test_proc_cpu_grows_with_work() -> None:
    before = proc_cpu(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert proc_cpu(os.getpid()) - before >= 0.2


def test_byte_proxy_counts_what_the_server_sent() -> None:
    body = b"x" * 100_000

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = ByteProxy("127.0.0.1", server.server_address[1])
    try:
        for _ in range(3):
            with urllib.request.urlopen(proxy.url + "/", timeout=10) as r:
                assert r.read() == body
        deadline = time.monotonic() + 5
        while proxy.snapshot() < 3 * len(body) and time.monotonic() < deadline:
            time.sleep(0.02)
        got = proxy.snapshot()
        assert 3 * len(body) <= got < 3 * len(body) + 3 * 1000, got  # bodies plus headers
    finally:
        proxy.close()
        server.shutdown()


def _result(value: str) -> SectionResult:
    r = SectionResult("real_comfyui", "Cost to a real ComfyUI 9.9")
    r.tables.append(Table("t", ["a"], [[value]]))
    return r


def test_write_section_replaces_only_its_own_block(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\n## 1. Cost\n\nsimulator numbers\n")
    write_section(out, _result("first"), "9.9", ["--x"], "box")
    write_section(out, _result("other"), "1.0", ["--x"], "box")
    write_section(out, _result("second"), "9.9", ["--x"], "box")
    text = out.read_text()
    assert text.startswith("# results\n\n## 1. Cost\n\nsimulator numbers\n")
    assert text.count(HEADING) == 1 and text.count("### ComfyUI 9.9") == 1
    assert "| second |" in text and "| first |" not in text and "| other |" in text
    assert text.index("### ComfyUI 9.9") < text.index("### ComfyUI 1.0")  # replaced in place
