"""Sources: each talks to one ComfyUI endpoint family and turns what it hears into events.

Every source has the same small shape: ``poll()`` (or ``run(stop)`` for the websocket) does the
I/O, parses with ``comfyui_exporter.parsers`` and hands typed events to ``emit``. Parsing problems
are counted as malformed messages for that source and skipped; transport problems are counted as
request failures by the client. No source touches the state directly.
"""
