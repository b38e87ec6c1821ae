"""install_plugin: copy and link modes, idempotence, refusal to clobber, and what the package ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from comfyui_exporter.cli.plugin_install import (
    PLUGIN_DIR_NAME,
    PluginInstallError,
    install_plugin,
    main,
    plugin_source,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def comfy(tmp_path: Path) -> Path:
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    return root


def test_package_ships_the_plugin_and_the_repo_link_points_at_it() -> None:
    source = plugin_source()
    assert {"__init__.py", "guard.py", "ring.py", "routes.py"} <= {p.name for p in source.iterdir()}
    link = REPO / "comfyui_plugin"
    assert link.is_symlink() and link.resolve() == source


def test_copy_is_idempotent_and_updates_changed_files(comfy: Path) -> None:
    first = install_plugin(comfy, "copy")
    target = comfy / "custom_nodes" / PLUGIN_DIR_NAME
    assert target.is_dir() and not target.is_symlink()
    assert (target / "__init__.py").read_bytes() == (plugin_source() / "__init__.py").read_bytes()
    assert not list(target.rglob("__pycache__"))
    assert any(line.startswith("copied") for line in first) and first[-1].startswith("restart ComfyUI")
    assert install_plugin(comfy, "copy") == [f"up to date: {target}"]
    (target / "guard.py").write_text("# edited\n")
    (target / "stale.py").write_text("x = 1\n")
    again = install_plugin(comfy, "copy")
    assert any(line.startswith("updated") for line in again)
    assert (target / "guard.py").read_bytes() == (plugin_source() / "guard.py").read_bytes()
    assert not (target / "stale.py").exists()
    assert [p.name for p in (comfy / "custom_nodes").iterdir()] == [PLUGIN_DIR_NAME]  # no staging left


def test_link_is_idempotent_and_replaces_a_copy_or_a_stale_link(comfy: Path, tmp_path: Path) -> None:
    target = comfy / "custom_nodes" / PLUGIN_DIR_NAME
    install_plugin(comfy, "copy")
    done = install_plugin(comfy, "link")
    assert target.is_symlink() and target.resolve() == plugin_source()
    assert any("removed copied plugin" in line for line in done)
    assert install_plugin(comfy, "link") == [f"already linked: {target} -> {plugin_source()}"]
    target.unlink()
    target.symlink_to(tmp_path / "old-venv" / "comfyui_plugin")  # dangling, e.g. a removed venv
    assert any(line.startswith("replaced link") for line in install_plugin(comfy, "link"))
    assert target.resolve() == plugin_source()
    assert any(line.startswith("removed link") for line in install_plugin(comfy, "copy"))
    assert target.is_dir() and not target.is_symlink()


def test_refuses_a_foreign_directory_and_a_non_comfyui_dir(comfy: Path, tmp_path: Path) -> None:
    foreign = comfy / "custom_nodes" / PLUGIN_DIR_NAME
    foreign.mkdir()
    (foreign / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    with pytest.raises(PluginInstallError, match="not the comfyui-exporter plugin"):
        install_plugin(comfy, "link")
    assert (foreign / "__init__.py").read_text() == "NODE_CLASS_MAPPINGS = {}\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PluginInstallError, match="does not look like ComfyUI"):
        install_plugin(empty, "copy")
    with pytest.raises(PluginInstallError, match="mode"):
        install_plugin(comfy, "move")  # type: ignore[arg-type]


def test_creates_custom_nodes_in_a_fresh_checkout(tmp_path: Path) -> None:
    root = tmp_path / "ComfyUI"
    root.mkdir()
    (root / "main.py").write_text("")
    done = install_plugin(root, "link")
    assert done[0] == f"created {root / 'custom_nodes'}"
    assert (root / "custom_nodes" / PLUGIN_DIR_NAME).is_symlink()


def test_cli_entry_prints_what_it_did_and_fails_cleanly(comfy: Path, tmp_path: Path, capsys: Any) -> None:
    assert main([str(comfy), "--mode", "link"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("linked ") and out[-1] == "restart ComfyUI to load the plugin"
    assert main([str(comfy), "--mode", "link"]) == 0
    assert capsys.readouterr().out.startswith("already linked")
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
