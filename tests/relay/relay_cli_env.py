"""The environment a relay subprocess needs to import this checkout's package."""

from __future__ import annotations

import os
from pathlib import Path

import comfyui_exporter

PACKAGE_ROOT = str(Path(comfyui_exporter.__file__).resolve().parent.parent)


def relay_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
