"""The relay's own Prometheus metrics, on a private registry (one per relay, so tests stay isolated).

Every failure reason is created at 0 for every target up front: a counter child that appears with the
value 1 has no previous sample, so ``increase()`` never sees it and an alert on it would never fire.
Label values are target names and fixed reasons only: never URLs or anything secret.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from comfyui_exporter import __version__

# Why a notification was not delivered (the label of notification_failures_total).
REASONS = (
    "network",  # connection refused/reset: robot unreachable
    "timeout",  # no answer within attempt_timeout_seconds
    "http_5xx",  # robot (or a proxy) answered 5xx
    "http_4xx",  # other 4xx without a robot error code
    "invalid_response",  # 2xx that is not a robot answer
    "robot_rate_limited",  # robot said "too fast" (130101 / 45009 / 11232 / HTTP 429)
    "robot_busy",  # robot said "system busy" (-1)
    "queued_past_deadline",  # our own rate limit held it until the deadline (answered 503)
    "signature",  # bad signature or timestamp: permanent until the secret/clock is fixed
    "keyword",  # keyword security: keyword missing
    "forbidden",  # IP allow list
    "bad_url",  # unknown access_token / key / hook id
    "too_large",  # robot said the message was too long (should not happen: we split)
    "robot_error",  # any other non-zero robot error code
    "internal",  # a bug in the relay (rendering, ...)
    "shutdown",  # the relay stopped before delivering (answered 503)
)
REJECT_REASONS = ("unauthorized", "malformed", "unknown_target", "too_large")


class RelayMetrics:
    """All relay metrics on one registry, served at ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.notifications = Counter(
            "comfyui_alert_relay_notifications",
            "Notifications accepted for a target.",
            ["target"],
            registry=r,
        )
        self.failures = Counter(
            "comfyui_alert_relay_notification_failures",
            "Notifications not delivered (answered 5xx so Alertmanager retries), by reason.",
            ["target", "reason"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "comfyui_alert_relay_delivery_seconds",
            "From receipt to the robot's OK, per delivered notification.",
            ["target"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=r,
        )
        self.queue_depth = Gauge(
            "comfyui_alert_relay_queue_depth",
            "Notifications waiting for a rate-limit token.",
            ["target"],
            registry=r,
        )
        self.messages = Counter(
            "comfyui_alert_relay_robot_messages",
            "Robot messages accepted by the robot.",
            ["target"],
            registry=r,
        )
        self.attempts = Counter(
            "comfyui_alert_relay_robot_requests",
            "Requests sent to robots, by outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self.merged = Counter(
            "comfyui_alert_relay_merged_notifications",
            "Notifications delivered inside a merged (rate-limited) message.",
            ["target"],
            registry=r,
        )
        self.duplicates = Counter(
            "comfyui_alert_relay_duplicate_notifications",
            "Notifications recognised as already delivered (or being delivered): answered 200, not resent.",
            ["target"],
            registry=r,
        )
        self.rejected = Counter(
            "comfyui_alert_relay_rejected_requests",
            "HTTP requests rejected (401/400/404/413).",
            ["reason"],
            registry=r,
        )
        self.journal_errors = Counter(
            "comfyui_alert_relay_journal_write_errors",
            "Journal records that could not be written.",
            registry=r,
        )
        self.reload_ok = Gauge(
            "comfyui_alert_relay_config_last_reload_successful",
            "1 if the last config (re)load succeeded.",
            registry=r,
        )
        self.build_info = Gauge(
            "comfyui_alert_relay_build_info", "Build information.", ["version"], registry=r
        )
        self.build_info.labels(__version__).set(1)
        self.reload_ok.set(1)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)

    def init_target(self, target: str) -> None:
        """Create every series of a target at 0 (see module docstring)."""
        self.notifications.labels(target)
        self.delivery_seconds.labels(target)
        self.queue_depth.labels(target).set(0)
        self.messages.labels(target)
        self.merged.labels(target)
        self.duplicates.labels(target)
        for outcome in ("ok", "transient", "permanent"):
            self.attempts.labels(target, outcome)
        for reason in REASONS:
            self.failures.labels(target, reason)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
