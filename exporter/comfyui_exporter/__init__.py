"""comfyui_exporter: a Prometheus exporter for ComfyUI that sees every outcome, not just its own."""

__version__ = "0.1.0"
