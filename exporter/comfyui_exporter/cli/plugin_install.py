"""``comfyui-exporter install-plugin``: put the plugin into ``ComfyUI/custom_nodes/``.

The canonical plugin lives inside this Python package (``comfyui_exporter/comfyui_plugin/``) so a
pip install ships it; the repository's top-level ``comfyui_plugin`` is a symlink to it.

- ``link``: ``custom_nodes/comfyui-exporter-plugin`` becomes a symlink to the installed package's
  copy, so upgrading the exporter upgrades the plugin (after a ComfyUI restart).
- ``copy``: the files are copied, for a ComfyUI in another container or without access to this
  Python environment. A new copy is assembled next to the target under a ``.disabled`` name
  (ComfyUI skips those) and swapped in, so an interrupted install never leaves half a plugin
  that ComfyUI would load.

Idempotent: running it again reports "up to date" / "already linked" and changes nothing. It
refuses to replace a directory of that name that is not this plugin.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

PLUGIN_DIR_NAME = "comfyui-exporter-plugin"
_MARKER = "comfyui-exporter plugin"  # appears in the plugin's __init__.py docstring
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


class PluginInstallError(ValueError):
    """The ComfyUI directory is not usable or the target is something else."""


def plugin_source() -> Path:
    """The plugin directory shipped inside this package."""
    return Path(__file__).resolve().parent.parent / "comfyui_plugin"


def install_plugin(comfyui_dir: Path, mode: Literal["copy", "link"] = "copy") -> list[str]:
    """Installs (or updates) the plugin; returns one line per thing done or found up to date."""
    if mode not in ("copy", "link"):
        raise PluginInstallError(f"mode must be 'copy' or 'link', not {mode!r}")
    source = plugin_source()
    root = Path(comfyui_dir).expanduser()
    custom_nodes = root / "custom_nodes"
    if not root.is_dir():
        raise PluginInstallError(f"{root} is not a directory")
    if not custom_nodes.is_dir() and not (root / "main.py").is_file():
        raise PluginInstallError(f"{root} does not look like ComfyUI (no custom_nodes/ and no main.py)")
    done: list[str] = []
    if not custom_nodes.is_dir():
        custom_nodes.mkdir()
        done.append(f"created {custom_nodes}")
    target = custom_nodes / PLUGIN_DIR_NAME
    _check_ours(target, source)
    if mode == "link":
        done += _link(source, target)
    else:
        done += _copy(source, target)
    if not done[-1].startswith(("up to date", "already linked")):
        done.append("restart ComfyUI to load the plugin")
    return done


def _check_ours(target: Path, source: Path) -> None:
    if target.is_symlink() or not target.exists():
        return  # a link (ours or dangling) or nothing: safe to (re)place
    init = target / "__init__.py"
    if not target.is_dir() or not init.is_file() or _MARKER not in init.read_text(errors="replace"):
        raise PluginInstallError(f"{target} exists and is not the comfyui-exporter plugin; move it away")


def _link(source: Path, target: Path) -> list[str]:
    if target.is_symlink():
        if target.resolve() == source:
            return [f"already linked: {target} -> {source}"]
        target.unlink()
        target.symlink_to(source, target_is_directory=True)
        return [f"replaced link {target} -> {source}"]
    done = []
    if target.exists():
        shutil.rmtree(target)
        done.append(f"removed copied plugin {target}")
    target.symlink_to(source, target_is_directory=True)
    return [*done, f"linked {target} -> {source}"]


def _copy(source: Path, target: Path) -> list[str]:
    done = []
    if target.is_symlink():
        target.unlink()
        done.append(f"removed link {target}")
    elif target.is_dir() and _same_tree(source, target):
        return [f"up to date: {target}"]
    staging = target.with_name(target.name + ".new.disabled")
    old = target.with_name(target.name + ".old.disabled")
    for leftover in (staging, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(source, staging, ignore=_IGNORE)
    if target.exists():
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
        return [*done, f"updated {target} from {source}"]
    staging.rename(target)
    return [*done, f"copied {source} to {target}"]


def _same_tree(a: Path, b: Path) -> bool:
    """True when both trees hold the same files with the same bytes (ignoring __pycache__)."""
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def main(argv: Sequence[str]) -> int:
    """``comfyui-exporter install-plugin /path/to/ComfyUI [--mode copy|link]``: prints what it did."""
    parser = argparse.ArgumentParser(
        prog="comfyui-exporter install-plugin",
        description="Install the optional plugin into ComfyUI/custom_nodes (see docs/plugin.md).",
    )
    parser.add_argument("comfyui_dir", type=Path, help="the ComfyUI directory (the one with main.py)")
    parser.add_argument(
        "--mode",
        choices=("copy", "link"),
        default="copy",
        help="copy the files (default) or symlink to this installation's copy",
    )
    args = parser.parse_args(list(argv))
    try:
        for line in install_plugin(args.comfyui_dir, args.mode):
            print(line)
    except (PluginInstallError, OSError) as exc:
        print(f"comfyui-exporter install-plugin: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, PluginInstallError) else 1
    return 0
