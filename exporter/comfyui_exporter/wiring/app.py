"""Wiring: watchers per instance, the registry, optional GPU collector, the HTTP server."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from ..config.settings import ExporterConfig
from ..exposition.collector import ComfyUICollector
from ..exposition.http_server import ExporterHTTPServer
from ..exposition.webconfig import WebConfigWatcher
from ..exposition.webserve import wrap_server
from ..gpu.collector import GpuCollector, build_gpu_collector
from ..gpu.mapping import ComfyDevice
from ..notify.metrics import AlertSenderCollector
from ..notify.notifier import EventNotifier
from .watcher import InstanceWatcher

log = logging.getLogger("comfyui_exporter")


class Exporter:
    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        # The event path (--alertmanager.url): off without a URL; its own threads, never the pollers'.
        self.notifier = EventNotifier(config) if config.alertmanager.enabled else None
        self.watchers = [
            InstanceWatcher(instance, config, notifier=self.notifier) for instance in config.instances
        ]
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        if self.notifier is not None:
            self.registry.register(AlertSenderCollector(self.notifier.sender))
        self.registry.register(ComfyUICollector(lambda: [w.instance for w in self.watchers]))
        self.gpu = self._gpu_collector()
        self.server: ExporterHTTPServer | None = None
        self.web = (
            WebConfigWatcher(
                config.web_config_file,
                protected_paths={"/failures"} if config.failures_require_auth else None,
            )
            if config.web_config_file
            else None
        )
        self._started = False

    def _gpu_collector(self) -> GpuCollector:
        """NVML read at scrape time; ``devices`` tells it which GPU each ComfyUI reported using."""

        def devices() -> list[ComfyDevice]:
            out = []
            for watcher in self.watchers:
                with watcher.instance.lock:
                    system = watcher.instance.state.system
                device = system.devices[0] if system and system.devices else None
                out.append(
                    ComfyDevice(
                        instance=watcher.name,
                        name=device.name if device else None,
                        type=device.type if device else None,
                        index=device.index if device else None,
                        vram_total=device.vram_total if device else None,
                        argv=system.argv if system else (),
                        override_uuid=watcher.instance_config.gpu_uuid,
                        listed=tuple(d.name for d in system.devices) if system else (),
                    )
                )
            return out

        collector = build_gpu_collector(self.config.gpu_enabled, self.config.gpu_expected_count, devices)
        self.registry.register(collector)
        return collector

    def failures(self, filters: dict[str, str]) -> list[dict[str, object]]:
        """Newest first across instances, at most 100."""
        records = []
        for watcher in self.watchers:
            with watcher.instance.lock:
                records.extend(watcher.instance.state.recent_failures)
        records = [r for r in records if all(getattr(r, key) == value for key, value in filters.items())]
        records.sort(key=lambda r: r.finished_at or 0.0, reverse=True)
        return [r.as_json() for r in records[:100]]

    def ready(self) -> bool:
        return self._started

    def start(self) -> None:
        self.server = ExporterHTTPServer(
            (self.config.listen_host, self.config.listen_port),
            self.registry,
            self.failures if self.config.failures_enabled else None,
            self.ready,
        )
        if self.web is not None:
            wrap_server(self.server, self.web)
            self.web.start()
        self.server.serve_in_thread()
        if self.notifier is not None:
            self.notifier.start()
            log.info(
                "pushing failure events to Alertmanager %s (links: %s)",
                ", ".join(w.name for w in self.notifier.sender.workers),
                self.config.public_url,
            )
        for watcher in self.watchers:
            watcher.start()
            log.info("watching ComfyUI %s at %s", watcher.name, watcher.instance_config.url)
        scheme = "https" if self.web is not None and self.web.tls_enabled else "http"
        host, port = self.config.listen_host, self.server.server_port
        log.info("serving metrics on %s://%s:%s/metrics", scheme, host, port)
        self._started = True

    def stop(self) -> None:
        started = time.monotonic()
        for watcher in self.watchers:  # all at once: SIGTERM must end the process within 2 s
            watcher.request_stop()
        for watcher in self.watchers:
            watcher.stop(timeout=max(0.0, 1.5 - (time.monotonic() - started)))
        if self.notifier is not None:
            self.notifier.stop(timeout=max(0.1, 1.7 - (time.monotonic() - started)))
        self.gpu.close()
        if self.web is not None:
            self.web.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        log.info("stopped in %.2f s", time.monotonic() - started)
