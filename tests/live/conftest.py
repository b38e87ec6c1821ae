"""Opt-in live suite against a real ComfyUI: ``COMFYUI_LIVE_URL=http://127.0.0.1:PORT pytest -m live``.

Without ``COMFYUI_LIVE_URL`` every test here is *deselected* (reported as deselected, never as a
skip: under CI=true a skip is a failure, and CI has no ComfyUI). Two groups need more than a URL
and are deselected likewise unless it is given:

* ``live_restart``: ``COMFYUI_LIVE_RESTART_CMD``, a shell command that restarts that ComfyUI and
  returns once it answers again (e.g. ``tests/live/restart-real-comfyui.sh``).
* ``live_plugin``: ``COMFYUI_LIVE_PLUGIN=1``, the exporter's plugin is installed in that ComfyUI;
  then a missing plugin is a failure, not a skip.

The ComfyUI must have the test node (tests/live/nodes/comfyui_exporter_testnode); a ComfyUI
without it fails the first test with a message saying how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.real_comfyui import RealComfyUI
from tests.support.stack import ExporterProcess, wait_until

LIVE_URL = os.environ.get("COMFYUI_LIVE_URL", "").strip()
RESTART_CMD = os.environ.get("COMFYUI_LIVE_RESTART_CMD", "").strip()
WITH_PLUGIN = os.environ.get("COMFYUI_LIVE_PLUGIN", "").strip().lower() in ("1", "true", "yes")
# Short intervals keep the suite quick; the lag test runs its own exporter with the defaults.
FAST = ("--poll-interval", "1", "--system-stats-interval", "2", "--request-timeout", "5")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("live") is None:
            keep.append(item)
            continue
        needs = [
            not LIVE_URL,
            item.get_closest_marker("live_restart") is not None and not RESTART_CMD,
            item.get_closest_marker("live_plugin") is not None and not WITH_PLUGIN,
        ]
        (drop if any(needs) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def comfy() -> RealComfyUI:
    c = RealComfyUI(LIVE_URL)
    wait_until(lambda: c.get("/system_stats"), 60, 0.5, what=f"ComfyUI at {LIVE_URL}")
    assert c.has_test_node(), (
        f"{LIVE_URL} has no ComfyUIExporterTestOutcome node: copy tests/live/nodes/comfyui_exporter_testnode "
        "into its custom_nodes/ (real-comfyui.sh: CUSTOM_NODES=...) and restart it"
    )
    c.wait_idle()
    return c


@pytest.fixture(scope="module")
def exporter(comfy: RealComfyUI) -> Iterator[ExporterProcess]:
    """One exporter per module, named ``live``, with short intervals."""
    proc = ExporterProcess(["--no-gpu", "--comfyui-url", f"live={comfy.url}", *FAST]).start()
    try:
        wait_until(lambda: proc.value("comfyui_up", comfyui="live") == 1, 30, what="exporter sees ComfyUI up")
        yield proc
    finally:
        proc.stop()
