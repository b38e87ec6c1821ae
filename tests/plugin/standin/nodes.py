"""Stand-in for nodes.py: the class mappings and the custom-node loader's module naming."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

NODE_CLASS_MAPPINGS: dict[str, Any] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


def load_custom_node(module_path: str) -> Any:
    """Loads a custom-node directory the way 0.8.0 does: module name = path with '.' -> '_x_'."""
    sys_module_name = module_path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(sys_module_name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[sys_module_name] = module
    spec.loader.exec_module(module)
    NODE_CLASS_MAPPINGS.update(getattr(module, "NODE_CLASS_MAPPINGS", None) or {})
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {})
    return module
