"""The exporter-side client against the plugin's real route served by the stand-in ComfyUI."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from comfyui_exporter.model.plugin_records import (
    PluginConnection,
    PromptFinished,
    PromptRejected,
    PromptStarted,
    StreamGap,
    StreamReset,
)
from comfyui_exporter.sources.plugin_stream import PluginStreamClient

from .harness import ComfyWorld, graph, recorded_submissions

MISSING_CKPT = next(c["request_body"] for c in recorded_submissions() if c.get("label") == "with client_id")
GARBLED = [b"not json", b'{"events": "nope"}', b'{"boot_id": 5, "seq": 1, "events": []}']


def _reject(world: ComfyWorld, n: int = 1) -> None:
    for _ in range(n):
        assert world.submit({"prompt": {"1": {"inputs": {}}}}).status_code == 400  # invalid_prompt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_detects_absence_unreachability_and_a_wrong_token(comfyui_dir: Path, monkeypatch: Any) -> None:
    dead = PluginStreamClient(f"http://127.0.0.1:{_free_port()}", timeout=0.5)
    first = dead.step()
    assert len(first) == 1 and not first[0].connected and first[0].detail.startswith("unreachable")
    assert dead.step() == []  # reported once, not on every retry
    monkeypatch.setenv("COMFYUI_EXPORTER_PLUGIN_DISABLE", "1")
    world = ComfyWorld(comfyui_dir).start()
    try:
        assert PluginStreamClient(world.url).step() == [PluginConnection(False, "absent")]
    finally:
        world.stop()
    monkeypatch.delenv("COMFYUI_EXPORTER_PLUGIN_DISABLE")
    monkeypatch.setenv("COMFYUI_EXPORTER_PLUGIN_TOKEN", "t0ken")
    world = ComfyWorld(comfyui_dir).start()
    try:
        assert PluginStreamClient(world.url).step() == [PluginConnection(False, "unauthorized")]
        assert PluginStreamClient(world.url, token="t0ken").step() == [PluginConnection(True, "connected")]
    finally:
        world.stop()


def test_follows_the_stream_from_the_moment_it_connects(world: ComfyWorld) -> None:
    _reject(world)  # before the exporter connected: not replayed
    client = PluginStreamClient(world.url, wait=2)
    assert client.step() == [PluginConnection(True, "connected")]
    assert world.submit(MISSING_CKPT).status_code == 400
    prompt_id = world.submit({"prompt": graph("pass", salt=1)}).json()["prompt_id"]
    world.wait_idle()
    records: list[Any] = []
    while not any(isinstance(r, PromptFinished) for r in records):
        records += client.step()
    [rejected] = [r for r in records if isinstance(r, PromptRejected)]
    assert (rejected.reason, rejected.node_type, rejected.input_name) == (
        "value_not_in_list", "CheckpointLoaderSimple", "ckpt_name")
    assert [r.prompt_id for r in records if isinstance(r, PromptStarted)] == [prompt_id]
    assert not any(isinstance(r, (StreamGap, StreamReset)) for r in records)
    assert client.malformed_total == 0


def test_long_poll_returns_as_soon_as_an_event_happens(world: ComfyWorld) -> None:
    client = PluginStreamClient(world.url, wait=5)
    client.step()
    threading.Timer(0.3, _reject, args=(world,)).start()
    start = time.monotonic()
    records = client.step()
    assert 0.2 < time.monotonic() - start < 2
    assert [type(r) for r in records] == [PromptRejected]


def test_restart_is_reported_as_a_reset_and_new_events_are_not_skipped(world: ComfyWorld) -> None:
    client = PluginStreamClient(world.url, wait=0.2, timeout=1)
    client.step()
    _reject(world, 2)
    assert len(client.step()) == 2
    old_boot = world.tap.ring.boot_id
    world.stop()
    down = client.step()
    assert [r.connected for r in down] == [False] and down[0].detail.startswith("unreachable")
    world.start()
    _reject(world, 3)  # happened in the new process before the exporter got back
    records = client.step()
    assert records[:2] == [PluginConnection(True, "connected"), StreamReset(old_boot, world.tap.ring.boot_id)]
    assert [r.seq for r in records[2:]] == [1, 2, 3]


def test_ring_overflow_is_reported_as_a_gap(comfyui_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("COMFYUI_EXPORTER_PLUGIN_RING", "8")
    world = ComfyWorld(comfyui_dir).start()
    try:
        client = PluginStreamClient(world.url, wait=0.2)
        client.step()
        _reject(world, 20)
        records = client.step()
        assert records[0] == StreamGap(expected_seq=1, received_seq=13, missed=12)
        assert [r.seq for r in records[1:]] == list(range(13, 21))
        assert world.tap.ring.dropped == 12
    finally:
        world.stop()


def test_run_loop_survives_restarts_gaps_and_a_failing_consumer(comfyui_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("COMFYUI_EXPORTER_PLUGIN_RING", "4")
    world = ComfyWorld(comfyui_dir).start()
    client = PluginStreamClient(world.url, wait=0.2, timeout=1, backoff=0.05, backoff_max=0.2)
    seen: list[Any] = []

    def consume(record: Any) -> None:
        seen.append(record)
        if isinstance(record, PromptRejected) and len(seen) == 2:
            raise RuntimeError("consumer bug")  # must not stop the stream

    def run_until(predicate: Any) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=client.run, args=(stop, consume), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        thread.join(5)
        assert not thread.is_alive() and predicate(), seen

    try:
        run_until(lambda: client.connected)
        _reject(world, 2)
        run_until(lambda: sum(isinstance(r, PromptRejected) for r in seen) == 2)
        _reject(world, 10)  # while the exporter thread is stopped: the ring (4) overflows
        run_until(lambda: sum(isinstance(r, PromptRejected) for r in seen) == 6)
        assert StreamGap(expected_seq=3, received_seq=9, missed=6) in seen
        world.restart()
        _reject(world)
        run_until(lambda: any(isinstance(r, StreamReset) for r in seen)
                  and isinstance(seen[-1], PromptRejected))
    finally:
        world.stop()
    kinds = [type(r).__name__ for r in seen]
    assert kinds[0] == "PluginConnection" and "StreamReset" in kinds


@pytest.mark.parametrize("body", GARBLED)
def test_a_garbled_response_is_a_bad_response_not_a_crash(body: bytes) -> None:
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        [state] = PluginStreamClient(f"http://127.0.0.1:{httpd.server_port}").step()
        assert not state.connected and state.detail.startswith("bad response")
    finally:
        httpd.shutdown()
        httpd.server_close()
