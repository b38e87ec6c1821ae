"""``python -m comfyui_exporter.stack``: what ``./scripts/run --stack`` runs."""

import sys

from .main import main

sys.exit(main())
