"""comfyui-exporter plugin: an optional event tap inside ComfyUI plus the "Health Check: VRAM" node.

Install by linking or copying this directory into ``ComfyUI/custom_nodes/`` (or run
``comfyui-exporter install-plugin /path/to/ComfyUI``). It needs nothing beyond ComfyUI itself.
The exporter works without it; with it, the exporter also sees validation rejections, exact start
times, progress of every prompt, per-node timings and VRAM guard trips (see docs/plugin.md).

ComfyUI loads this file under a module name derived from its path and the tap is installed then.
Imported as ``comfyui_exporter.comfyui_plugin`` (the exporter's own package: tests, packaging)
nothing is hooked, because that process is not ComfyUI.
"""

from __future__ import annotations

import logging

from .guard import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]

if __name__ != "comfyui_exporter.comfyui_plugin":
    try:
        from .bootstrap import install

        install()
    except Exception:  # the tap is optional: never let it stop ComfyUI from loading the node
        logging.getLogger("comfyui_exporter_plugin").exception(
            "comfyui-exporter plugin: event tap could not be installed"
        )
