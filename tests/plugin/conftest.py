"""Fixtures for the plugin tests: a ComfyUI directory with the plugin linked in, stand-in modules,
and a running fake ComfyUI (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyui_exporter.cli.plugin_install import install_plugin

from .harness import ComfyWorld, StandIn

PLUGIN_ENV = ("COMFYUI_EXPORTER_PLUGIN_TOKEN", "COMFYUI_EXPORTER_PLUGIN_RING",
              "COMFYUI_EXPORTER_PLUGIN_PROGRESS_INTERVAL", "COMFYUI_EXPORTER_PLUGIN_DISABLE")


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PLUGIN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def comfyui_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("# stand-in\n")
    install_plugin(root, "link")
    return root


@pytest.fixture
def standin() -> Iterator[dict]:
    s = StandIn()
    mods = s.load()
    yield mods
    s.unload()


@pytest.fixture
def world(comfyui_dir: Path) -> Iterator[ComfyWorld]:
    w = ComfyWorld(comfyui_dir).start()
    yield w
    w.stop()


@pytest.fixture(autouse=True)
def _no_leftover_tap() -> Iterator[None]:
    """install() and the guard share a module-level 'current tap'; no test may see another's."""
    from comfyui_exporter.comfyui_plugin import tap

    tap.set_current(None)
    yield
    tap.set_current(None)
