"""Entry points: ``comfyui-exporter`` and its subcommands (``doctor``, ``install-plugin``); the lifecycle.

The top of the import graph: it imports wiring and config; nothing in the package imports it.
"""
