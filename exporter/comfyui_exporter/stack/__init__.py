"""``./scripts/run --stack``: exporter, Prometheus, Alertmanager and the relay on loopback, no Docker.

The data path of this folder: ``settings`` (flags, ``stack.env``, ``COMFYUI_STACK_*`` variables) ->
``binaries`` (find Prometheus / Alertmanager) -> ``render`` (write the shipped configs, rewritten for
127.0.0.1, into the state folder) -> ``supervise`` (check ports, start, wait until ready, stop all on
SIGINT/SIGTERM). ``notify_log`` is the local notification log that receives what has nowhere else
to go, so that an unconfigured stack still shows every alert (``tail -f .stack/notifications.log``).
"""
