"""Wiring: sources, state and exposition assembled into a running exporter.

``watcher`` drives one ComfyUI instance's sources into its state; ``app`` builds the watchers,
the collectors and the HTTP server from an ``ExporterConfig``.
"""
