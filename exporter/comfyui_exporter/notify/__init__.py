"""The event path: failures the exporter counts, pushed to Alertmanager's API within ~100 ms.

``alerts`` (pure: records → alerts, the cooldown windows), ``sender`` (bounded queues, one thread
per Alertmanager, retries), ``metrics`` (``comfyui_exporter_alerts_*``), ``notifier`` (what the
wiring calls). The Prometheus rules stay the backstop; docs/alerting.md explains both paths.
"""
