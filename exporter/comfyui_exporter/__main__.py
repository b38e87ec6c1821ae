"""``python -m comfyui_exporter``: the same as the ``comfyui-exporter`` command."""

import sys

from .cli.main import main

sys.exit(main())
