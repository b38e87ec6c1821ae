"""Render notifications as markdown in each robot's dialect and language (Jinja2 templates).

Templates live in ``templates/``: ``message.<lang>.j2`` (one notification), ``merged.<lang>.j2`` (several
notifications folded together while the robot's rate limit is exhausted), ``title.<lang>.j2`` and
``dialect/<robot>.j2`` (markdown flavour macros: headings, colours). A ``templates_dir`` in the config
overrides any of them by file name. A broken user template falls back to the built-in one (and is
logged): a typo in a template must not stop alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2

from .config import TargetConfig
from .failures import FailureDetail, alert_key
from .payload import Alert, Payload, oneline, parse_payload, short
from .views import alert_view, detail_of

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("templates")
_ICONS = {"critical": "🔴", "warning": "🟠", "error": "🔴", "info": "🔵"}


@dataclass(frozen=True)
class Message:
    """Rendered markdown; robots add their framing (title field, mentions, signature)."""

    title: str
    text: str
    critical: bool
    ref: str


def matchers(labels: dict[str, str]) -> str:
    """Alertmanager matcher syntax ``{a="b",c="d"}``, quotes and backslashes escaped."""

    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels.items())) + "}"


def silence_url(external_url: str, labels: dict[str, str]) -> str:
    """Alertmanager's "new silence" page pre-filled with the group's labels."""
    if not external_url or not labels:
        return ""
    return f"{external_url.rstrip('/')}/#/silences/new?filter={quote(matchers(labels), safe='')}"


def alerts_url(external_url: str, labels: dict[str, str]) -> str:
    if not external_url:
        return ""
    base = f"{external_url.rstrip('/')}/#/alerts"
    return f"{base}?filter={quote(matchers(labels), safe='')}" if labels else base


def fmt_time(when: datetime | None, tz: str) -> str:
    if when is None:
        return ""
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _counts(alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    """Count per alertname (first-seen order): the summary that precedes the details."""
    counts: dict[str, dict[str, Any]] = {}
    for a in alerts:
        c = counts.setdefault(a.name or "?", {"name": a.name or "?", "firing": 0, "resolved": 0, "total": 0})
        c[a.status] += 1
        c["total"] += 1
    return list(counts.values())


def _icon(alert: Alert) -> str:
    return "✅" if alert.status == "resolved" else _ICONS.get(alert.severity, "🟡")


def _view(
    alert: Alert,
    payload: Payload,
    tz: str,
    failure: FailureDetail | None,
    *,
    silence: str = "",
    level: int = 0,
    field_limit: int | None = None,
) -> dict[str, Any]:
    return alert_view(
        alert,
        payload,
        detail_of(alert, failure),
        icon=_icon(alert),
        starts_at=fmt_time(alert.starts_at, tz),
        ends_at=fmt_time(alert.ends_at, tz) if alert.status == "resolved" else "",
        silence=silence,
        level=level,
        field_limit=field_limit,
    )


def group_silence_url(payload: Payload) -> str:
    """The silence link of a firing notification's group ("" when resolved)."""
    if payload.status != "firing":
        return ""
    return silence_url(payload.external_url, payload.group_labels or payload.common_labels)


class Renderer:
    """Jinja2 environments (user overrides first, built-in fallback) and the two message kinds."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self._builtin = self._env([TEMPLATES])
        self._user = self._env([templates_dir, TEMPLATES]) if templates_dir else None

    @staticmethod
    def _env(paths: list[Path]) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in paths]),
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["oneline"] = oneline
        env.filters["short"] = short
        return env

    def _render(self, name: str, ctx: dict[str, Any], strict: bool = False) -> str:
        if self._user is not None:
            try:
                return self._user.get_template(name).render(ctx).strip()
            except Exception as exc:
                if strict:
                    raise
                log.error(
                    "template %s failed (%s: %s); using the built-in template", name, type(exc).__name__, exc
                )
        return self._builtin.get_template(name).render(ctx).strip()

    def single(
        self,
        payload: Payload,
        target: TargetConfig,
        ref: str,
        failures: dict[str, FailureDetail] | None = None,
        max_details: int | None = None,
        strict: bool = False,
        field_limit: int | None = None,
    ) -> Message:
        """One notification: summary counts, then up to ``max_details`` alert details, then links."""
        failures = failures or {}
        alerts = list(payload.alerts)
        shown = alerts if max_details is None else alerts[:max_details]
        labels = payload.group_labels or payload.common_labels
        ctx = {
            "dialect": target.type,
            "lang": target.language,
            "merged": False,
            "firing": payload.status == "firing",
            "status": payload.status,
            "counts": _counts(alerts),
            "total": len(alerts),
            "omitted": len(alerts) - len(shown),
            "truncated": payload.truncated_alerts,
            "group_labels": payload.group_labels,
            "alerts": [
                _view(a, payload, target.timezone, failures.get(alert_key(a)), field_limit=field_limit)
                for a in shown
            ],
            "silence_url": silence_url(payload.external_url, labels) if payload.status == "firing" else "",
            "alertmanager_url": alerts_url(payload.external_url, labels),
            "ref": ref,
        }
        return self._message(ctx, "message", target, payload.critical, ref, strict)

    def merged(
        self,
        payloads: Sequence[Payload],
        target: TargetConfig,
        ref: str,
        max_items: int | None = None,
        strict: bool = False,
        *,
        failures: Sequence[dict[str, FailureDetail]] | None = None,
        level: int = 0,
        rate_limited: bool = True,
    ) -> Message:
        """Several notifications in one message: every alert with its detail at ``level`` (see
        :mod:`.views`), while room lasts (``max_items``); counts for all."""
        per = list(failures) if failures is not None else [{} for _ in payloads]
        triples = [(p, a, f) for p, f in zip(payloads, per, strict=True) for a in p.alerts]
        shown = triples if max_items is None else triples[:max_items]
        silences = {id(p): group_silence_url(p) for p in payloads}
        items = [
            _view(a, p, target.timezone, f.get(alert_key(a)), silence=silences[id(p)], level=level)
            for p, a, f in shown
        ]
        ctx = {
            "dialect": target.type,
            "lang": target.language,
            "merged": True,
            "rate_limited": rate_limited,
            "firing": any(p.status == "firing" for p in payloads),
            "notifications": len(payloads),
            "counts": _counts([a for _, a, _ in triples]),
            "total": len(triples),
            "items": items,
            "omitted": len(triples) - len(shown),
            "ref": ref,
            "alertmanager_url": alerts_url(payloads[0].external_url, {}) if payloads else "",
        }
        return self._message(ctx, "merged", target, any(p.critical for p in payloads), ref, strict)

    def _message(
        self, ctx: dict[str, Any], kind: str, target: TargetConfig, critical: bool, ref: str, strict: bool
    ) -> Message:
        lang = target.language
        text = self._render(f"{kind}.{lang}.j2", ctx, strict)
        title = oneline(self._render(f"title.{lang}.j2", ctx, strict))[:120]
        return Message(title=title or "Alertmanager", text=text, critical=critical, ref=ref)

    def check(self, target: TargetConfig) -> None:
        """Render a sample through the user's templates; raises so config validation can report it."""
        sample = parse_payload(SAMPLE_PAYLOAD)
        self.single(sample, target, "check", strict=True)
        self.merged([sample, sample], target, "check", strict=True)


SAMPLE_PAYLOAD = (
    '{"version":"4","status":"firing","receiver":"relay","groupKey":"{}:{alertname=\\"ComfyUIOutOfMemory\\"}",'
    '"truncatedAlerts":0,"groupLabels":{"alertname":"ComfyUIOutOfMemory"},'
    '"commonLabels":{"alertname":"ComfyUIOutOfMemory","severity":"critical"},"commonAnnotations":{},'
    '"externalURL":"http://alertmanager:9093","alerts":[{"status":"firing","labels":{"alertname":'
    '"ComfyUIOutOfMemory","severity":"critical","comfyui":"gpu-1","error_type":"oom"},"annotations":'
    '{"summary":"Out of memory","runbook_url":"http://r"},"startsAt":"2026-01-01T00:00:00Z",'
    '"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus/graph","fingerprint":"abc"}]}'
)
