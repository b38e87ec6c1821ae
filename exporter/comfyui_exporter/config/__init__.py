"""Configuration in, immutable settings out: flags, ``COMFYUI_EXPORTER_*``, the ``--config`` file, web config.

Below every other folder: sources, exposition, wiring and the entry points all read ``settings``;
nothing here imports them.
"""
