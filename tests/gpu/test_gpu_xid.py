"""The XID watcher and store (comfyui_exporter.gpu.source.xid)."""

from __future__ import annotations

import logging
import time

import pynvml
import pytest

from comfyui_exporter.gpu.source.errors import ErrorCounts
from comfyui_exporter.gpu.source.nvml import XidEvent
from comfyui_exporter.gpu.source.xid import XidStore, XidWatcher

from .support import fake


def test_store_counts_and_keeps_the_last_time_sorted_by_xid_number() -> None:
    store = XidStore()
    assert store.record("0", "GPU-a", 79, 100.0) is True
    assert store.record("0", "GPU-a", 79, 130.0) is False  # within a minute: not logged loudly again
    store.record("0", "GPU-a", 13, 120.0)
    store.record("0", "GPU-a", 119, 125.0)
    snap = store.snapshot()
    assert [(s.xid, s.count, s.last_seconds) for s in snap] == [
        ("13", 1, 120.0),
        ("79", 2, 130.0),
        ("119", 1, 125.0),
    ]
    assert store.record("0", "GPU-a", 79, 200.0) is True


def test_events_without_a_uuid_take_the_known_one_and_unknown_devices_get_empty_labels() -> None:
    store = XidStore()
    watcher = XidWatcher(
        fake("xid_events"), store, ErrorCounts(), uuid_for_index={3: "GPU-known"}.get, wall=lambda: 5.0
    )
    watcher.record(XidEvent(index=3, uuid=None, xid=48))
    watcher.record(XidEvent(index=None, uuid=None, xid=79))
    assert [(s.gpu, s.uuid, s.xid) for s in store.snapshot()] == [("", "", "79"), ("3", "GPU-known", "48")]


def test_a_gpu_that_cannot_deliver_events_is_counted_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    nvml = fake("xid_events")
    nvml.capture["xid"]["register"]["1"] = {"error": "NOT_SUPPORTED"}
    nvml.init()
    errors = ErrorCounts()
    watcher = XidWatcher(nvml, XidStore(), errors)
    with caplog.at_level(logging.INFO):
        assert watcher.register(range(2)) == [0]
    assert errors.snapshot()["not_supported"] == 1
    assert "XID events unavailable" in caplog.text


def test_no_registered_gpu_means_no_thread() -> None:
    nvml = fake("xid_events")
    nvml.init()
    watcher = XidWatcher(nvml, XidStore(), ErrorCounts())
    watcher.start()
    assert not watcher.running


def test_poll_once_is_false_on_timeout_and_true_per_event() -> None:
    nvml = fake("xid_events")
    nvml.init()
    store = XidStore()
    watcher = XidWatcher(nvml, store, ErrorCounts(), poll_ms=0)
    watcher.register(range(2))
    assert watcher.poll_once() is True  # sample 0: XID 13
    assert watcher.poll_once() is False
    nvml.advance()
    assert [watcher.poll_once() for _ in range(4)] == [True, True, True, False]
    assert {(s.gpu, s.xid): s.count for s in store.snapshot()} == {("0", "13"): 2, ("1", "94"): 2}


class Broken:
    """xid_wait always fails the way a driver in trouble does."""

    def __init__(self) -> None:
        self.waits = 0

    def xid_register(self, index: int) -> None:
        pass

    def xid_wait(self, timeout_ms: int) -> XidEvent | None:
        self.waits += 1
        raise pynvml.NVMLError_Unknown()

    def xid_close(self) -> None:
        pass


def test_wait_errors_back_off_log_once_and_stop_promptly(caplog: pytest.LogCaptureFixture) -> None:
    nvml = Broken()
    errors = ErrorCounts()
    watcher = XidWatcher(nvml, XidStore(), errors)  # type: ignore[arg-type]
    watcher.register([0])
    with caplog.at_level(logging.WARNING):
        watcher.start()
        time.sleep(0.3)
        started = time.monotonic()
        watcher.stop()
    assert time.monotonic() - started < 1.0
    assert nvml.waits == 1  # then waiting 1 s before the next try
    assert errors.snapshot()["unknown"] == 1
    assert caplog.text.count("waiting for NVML XID events failed") == 1
    assert [watcher.step() for _ in range(7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
