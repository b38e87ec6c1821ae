"""The relay's HTTP side (aiohttp): endpoints, bearer auth, rejection journaling, reload.

Endpoints: ``POST /alerts/<target>`` (deliver), ``POST /journal`` (record only), ``GET /metrics``,
``GET /-/healthy``, ``GET /-/ready``, ``POST /-/reload``. Every POST needs ``Authorization: Bearer``.
A rejected request (401, 400, 404, 413) is journaled with its reason; a malformed body from an
authenticated sender is journaled too (bounded), so even a payload we cannot parse is not lost.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from ..exposition.webconfig import WebConfigError, WebConfigWatcher
from ..exposition.webserve import aiohttp_middleware, aiohttp_ssl_context
from .access import RelayAccessLogger
from .config import ConfigError, RelayConfig, TargetConfig, load_config
from .dedup import DeliveredIndex, dedup_key
from .delivery import Pending, Result, TargetWorker, new_id
from .failures import FailureLookup
from .journal import Journal
from .metrics import RelayMetrics
from .payload import PayloadError, parse_payload
from .ratelimit import RateLimiter
from .redact import REDACTOR, install_log_redaction, redacted_url
from .render import Renderer
from .robots import make_robot

log = logging.getLogger(__name__)
MAX_BODY = 8 * 1024 * 1024
JOURNALED_BODY = 64 * 1024


def build_renderer(config: RelayConfig) -> Renderer:
    """A renderer whose (user) templates render every target's sample; else :class:`ConfigError`."""
    renderer = Renderer(config.templates_dir)
    for target in config.targets.values():
        try:
            renderer.check(target)
        except Exception as exc:
            raise ConfigError(
                "templates_dir", f"templates fail for target {target.name}: {type(exc).__name__}: {exc}"
            ) from None
    return renderer


class Relay:
    """One relay instance: config, journal, metrics, a worker per target, the aiohttp app."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        config_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        rate_window_scale: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        install_log_redaction()
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self._env = env if env is not None else os.environ
        self._scale = rate_window_scale  # tests compress the robots' one-minute window
        self._wall_clock = wall_clock
        self.metrics = RelayMetrics(registry)
        self.journal = Journal(config.journal, on_error=self.metrics.journal_errors.inc)
        self.delivered = DeliveredIndex(config.delivery.duplicate_window_seconds, wall_clock)
        self._inflight: dict[str, Pending] = {}  # dedup key -> the notification being delivered
        self.renderer = build_renderer(config)
        self.workers: dict[str, TargetWorker] = {}
        self._session: aiohttp.ClientSession | None = None
        self._lookup: FailureLookup | None = None
        self._runner: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self.ready = False
        self.web = _web_config(config)
        middlewares = [_post_uses_bearer(aiohttp_middleware(self.web))] if self.web else []
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
        self.app.add_routes(
            [
                web.post("/alerts/{target}", self._alerts),
                web.post("/journal", self._journal_only),
                web.get("/metrics", self._metrics),
                web.get("/-/healthy", self._healthy),
                web.get("/-/ready", self._ready),
                web.post("/-/reload", self._reload),
            ]
        )

    # ---- lifecycle -------------------------------------------------------------------------------
    def _get_session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "relay not started"
        return self._session

    def _worker(self, target: TargetConfig, config: RelayConfig) -> TargetWorker:
        worker = TargetWorker(
            target,
            make_robot(target, self._wall_clock),
            RateLimiter.for_target(target.rate_limit, self._scale),
            self.renderer,
            self.journal,
            self.metrics,
            self._get_session,
            config.delivery,
        )
        worker.delivered = self.delivered
        return worker

    def _make_lookup(self, config: RelayConfig) -> FailureLookup | None:
        if not config.exporter_failures_url:
            return None
        return FailureLookup(
            config.exporter_failures_url, config.exporter_failures_timeout, self._get_session
        )

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Bind (``port=0`` picks a free port) and start the workers; returns the bound address."""
        self._session = aiohttp.ClientSession()
        self._lookup = self._make_lookup(self.config)
        self.delivered.load(self.journal.path)
        for target in self.config.targets.values():
            self.workers[target.name] = worker = self._worker(target, self.config)
            parts = self.delivered.parts.get(target.name, {})
            worker.remember_parts({k: self._wall_clock() - at for k, at in parts.items()})
            worker.start()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log_class=RelayAccessLogger)
        await self._runner.setup()
        bind_host = host if host is not None else self.config.listen_host
        site = web.TCPSite(
            self._runner,
            bind_host,
            self.config.listen_port if port is None else port,
            ssl_context=aiohttp_ssl_context(self.web) if self.web else None,
        )
        if self.web:
            self.web.start()
        await site.start()
        sockname = self._runner.addresses[0] if self._runner.addresses else (bind_host, 0)
        self.ready = True
        log.info(
            "relay listening on %s:%s with targets %s",
            sockname[0],
            sockname[1],
            ", ".join(
                f"{t.name} ({t.type} {redacted_url(t.url.reveal())})" for t in self.config.targets.values()
            ),
        )
        for name, why in sorted(self.config.disabled_targets.items()):
            log.warning("target %s is disabled (optional, %s); its notifications are refused", name, why)
        if not self.config.targets:
            log.warning("no robot target is enabled: notifications are only journaled (POST /journal)")
        return str(sockname[0]), int(sockname[1])

    async def stop(self) -> None:
        """Answer 503 to everything still queued (Alertmanager retries), then close the server."""
        self.ready = False
        if self.web:
            self.web.stop()
        for worker in list(self.workers.values()):
            await worker.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.journal.close()

    async def reload(self) -> None:
        """Re-read the config file; on any error keep the running config and raise :class:`ConfigError`."""
        async with self._reload_lock:
            if self.config_path is None:
                raise ConfigError("", "no config file to reload from")
            try:
                new = load_config(self.config_path, self._env)
                renderer = build_renderer(new)
            except ConfigError as exc:
                self.metrics.reload_ok.set(0)
                log.error("config reload failed, keeping the running config: %s", exc)
                raise
            if (new.listen_host, new.listen_port) != (self.config.listen_host, self.config.listen_port):
                log.warning(
                    "listen address changed to %s:%s: takes effect only after a restart",
                    new.listen_host,
                    new.listen_port,
                )
            self.journal.reconfigure(new.journal)
            self.delivered.window = new.delivery.duplicate_window_seconds
            self.renderer = renderer
            for name in [n for n in self.workers if n not in new.targets]:
                await self.workers.pop(name).close()
            for target in new.targets.values():
                worker = self.workers.get(target.name)
                if worker is None:
                    self.workers[target.name] = worker = self._worker(target, new)
                    worker.start()
                else:
                    worker.reconfigure(
                        target,
                        make_robot(target, self._wall_clock),
                        RateLimiter.for_target(target.rate_limit, self._scale),
                        renderer,
                        new.delivery,
                    )
            self.config = new
            self._lookup = self._make_lookup(new)
            self.metrics.reload_ok.set(1)
            self.journal.write("reloaded", targets=sorted(new.targets))
            log.info("config reloaded: targets %s", ", ".join(sorted(new.targets)))

    # ---- request helpers -------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = self.config.auth_token.reveal().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    def _reject(
        self, request: web.Request, status: int, reason: str, detail: str = "", body: bytes | None = None
    ) -> web.Response:
        self.metrics.rejected.labels(reason).inc()
        fields: dict[str, Any] = {
            "status": status,
            "reason": reason,
            "path": request.path,
            "remote": request.remote,
            "detail": detail,
            "content_length": request.content_length,
        }
        if body is not None:
            fields["body"] = body[:JOURNALED_BODY].decode("utf-8", "replace")
            fields["body_truncated"] = len(body) > JOURNALED_BODY
        self.journal.write("rejected", **fields)
        log.warning(
            "rejected %s %s from %s: %s %s",
            request.method,
            request.path,
            request.remote,
            status,
            REDACTOR.scrub(detail or reason),
        )
        return web.json_response({"status": "rejected", "reason": reason, "detail": detail}, status=status)

    async def _read(self, request: web.Request) -> bytes | web.Response:
        if not self._authorized(request):
            return self._reject(request, 401, "unauthorized", "missing or wrong bearer token")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(request, 413, "too_large", f"body over {MAX_BODY} bytes")

    # ---- handlers --------------------------------------------------------------------------------
    async def _alerts(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        name = request.match_info["target"]
        worker = self.workers.get(name)
        if worker is None:
            why = self.config.disabled_targets.get(name)
            detail = (
                f"target {name!r} is disabled ({why}; optional: true): give it a URL and reload"
                if why
                else f"no target named {name!r}"
            )
            return self._reject(request, 404, "unknown_target", detail, body)
        try:
            payload = parse_payload(body)
        except PayloadError as exc:
            return self._reject(request, 400, "malformed", str(exc), body)
        now = time.monotonic()
        key = dedup_key(name, payload) if self.delivered.enabled else ""
        pending = Pending(new_id(), payload, now, now + self.config.delivery.deadline_seconds, dedup_key=key)
        # Journal first: whatever happens next, the notification is on disk.
        self.journal.write(
            "received",
            id=pending.id,
            target=name,
            alerts=len(payload.alerts),
            status=payload.status,
            group_key=payload.group_key,
            dedup_key=key,
            payload=payload.raw,
        )
        if key:
            seen = self.delivered.get(key)
            if seen is not None:
                return self._duplicate(
                    name, pending, Result(200, "delivered", ref=seen.ref, message_ids=seen.messages)
                )
            twin = self._inflight.get(key)
            if twin is not None:  # the same notification is being delivered right now: share its answer
                result = await asyncio.shield(twin.future)
                if result.http_status == 200:
                    return self._duplicate(name, pending, result)
                return _answer(pending, result)
            self._inflight[key] = pending
        try:
            if self._lookup is not None:
                pending.failures = await self._lookup.details(payload.alerts)
            worker.submit(pending)
            result = await worker.wait(pending)
        finally:
            if key and self._inflight.get(key) is pending:
                del self._inflight[key]
        return _answer(pending, result)

    def _duplicate(self, name: str, pending: Pending, original: Result) -> web.Response:
        """Answer 200 for a notification already delivered, without sending it again."""
        self.metrics.duplicates.labels(name).inc()
        self.journal.write(
            "duplicate",
            id=pending.id,
            target=name,
            dedup_key=pending.dedup_key,
            ref=original.ref,
            messages=list(original.message_ids),
        )
        log.info(
            "target %s: notification %s already delivered (ref %s); answered 200 without resending",
            name,
            pending.id,
            original.ref,
        )
        return _answer(
            pending, Result(200, "duplicate", "already_delivered", "", original.ref, original.message_ids)
        )

    async def _journal_only(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        if isinstance(body, web.Response):
            return body
        try:
            payload = parse_payload(body)
        except PayloadError as exc:
            return self._reject(request, 400, "malformed", str(exc), body)
        record_id = new_id()
        self.journal.write(
            "journal_only",
            id=record_id,
            alerts=len(payload.alerts),
            status=payload.status,
            group_key=payload.group_key,
            payload=payload.raw,
        )
        return web.json_response({"status": "journaled", "id": record_id})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(
            text="ready\n" if self.ready else "not ready\n", status=200 if self.ready else 503
        )

    async def _reload(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._reject(request, 401, "unauthorized", "missing or wrong bearer token")
        try:
            await self.reload()
        except ConfigError as exc:
            return web.Response(text=f"reload failed: {exc}\n", status=500)
        return web.Response(text="reloaded\n")


def _answer(pending: Pending, result: Result) -> web.Response:
    return web.json_response(
        {
            "status": result.status,
            "id": pending.id,
            "reason": result.reason,
            "detail": result.detail,
            "ref": result.ref,
            "messages": list(result.message_ids),
            "merged_with": result.merged_with,
        },
        status=result.http_status,
    )


def _web_config(config: RelayConfig) -> WebConfigWatcher | None:
    if config.web_config_file is None:
        return None
    try:
        return WebConfigWatcher(config.web_config_file)
    except WebConfigError as exc:
        raise ConfigError("web_config_file", str(exc)) from None


def _post_uses_bearer(middleware: Callable[..., Any]) -> Callable[..., Any]:
    """Alertmanager sends one Authorization header, the relay's bearer token: POSTs skip basic auth.

    TLS and client certificates (in the SSL context) still apply to every request; basic auth and
    the extra headers of the web config apply to the GET endpoints (/metrics, /-/healthy, /-/ready).
    """

    @web.middleware
    async def relay_web_config(request: web.Request, handler: Callable[..., Any]) -> Any:
        if request.method == "POST":
            return await handler(request)
        return await middleware(request, handler)

    return relay_web_config
