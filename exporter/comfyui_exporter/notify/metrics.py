"""``comfyui_exporter_alerts_*``: what the event path did, per Alertmanager, rendered at scrape time.

Every configured Alertmanager has all its series from the start (at 0), so an alert on
``increase(comfyui_exporter_alerts_dropped_total[...])`` or on the reachability gauge works from
the first sample.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .sender import AlertSender


class AlertSenderCollector(Collector):
    def __init__(self, sender: AlertSender) -> None:
        self._sender = sender

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        label = ["alertmanager"]
        sent = CounterMetricFamily(
            "comfyui_exporter_alerts_sent", "Event alerts Alertmanager accepted.", labels=label
        )
        failed = CounterMetricFamily(
            "comfyui_exporter_alerts_failed",
            "Event alerts in POSTs to Alertmanager that failed (retried unless refused).",
            labels=label,
        )
        dropped = CounterMetricFamily(
            "comfyui_exporter_alerts_dropped",
            "Event alerts given up: the queue overflowed or Alertmanager refused them (4xx).",
            labels=label,
        )
        queued = GaugeMetricFamily(
            "comfyui_exporter_alerts_queue_length", "Event alerts waiting to be sent.", labels=label
        )
        up = GaugeMetricFamily(
            "comfyui_exporter_alerts_alertmanager_up",
            "1 while the last POST of event alerts to this Alertmanager succeeded.",
            labels=label,
        )
        for worker in self._sender.workers:
            stats = worker.stats
            sent.add_metric([worker.name], stats.sent)
            failed.add_metric([worker.name], stats.failed)
            dropped.add_metric([worker.name], stats.dropped)
            queued.add_metric([worker.name], stats.queued)
            up.add_metric([worker.name], stats.up)
        yield from (sent, failed, dropped, queued, up)
