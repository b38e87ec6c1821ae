"""Parse Alertmanager's webhook payload (version 4) into typed, sanitised objects.

The parser is the relay's trust boundary: anything that is not a well-formed v4 payload raises
:class:`PayloadError` (answered 400 and journaled), never another exception. Strings are cleaned of
lone UTF-16 surrogates (valid JSON, invalid UTF-8) so that rendering and size cuts cannot crash later.
Timestamps are display-only, so an unparseable one becomes ``None`` rather than a rejection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_ALERTS = 10_000


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 webhook payload; the message says what is wrong."""


def clean_text(value: str) -> str:
    """Replace lone surrogates with U+FFFD so the text always encodes to UTF-8."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def oneline(value: Any) -> str:
    """Collapse whitespace (newlines included): robot markdown lines must stay one line."""
    return " ".join(str(value or "").split())


def short(value: Any, limit: int = 80) -> str:
    """One line, cut at a word boundary when there is one in the second half, ending in "…"."""
    text = oneline(value)
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (nanoseconds allowed) to an aware datetime; Go's zero time and junk become None."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    if "." in text:  # Python keeps microseconds; Go sends up to nanoseconds
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:] if digits else head + rest
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _str(obj: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key} must be a string")
    return clean_text(value)


def _kv(obj: dict[str, Any], key: str, where: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}{key} must be an object")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise PayloadError(f"{where}{key}.{clean_text(str(k))[:60]} must be a string")
        out[clean_text(k)] = clean_text(v)
    return out


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def instance(self) -> str:
        """The ComfyUI instance, from the exporter's ``comfyui`` label."""
        return self.labels.get("comfyui", "")

    @property
    def error_type(self) -> str:
        return self.labels.get("error_type", "")


@dataclass(frozen=True)
class Payload:
    status: str
    receiver: str
    group_key: str
    truncated_alerts: int
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def critical(self) -> bool:
        return any(a.status == "firing" and a.severity == "critical" for a in self.alerts)


def _alert(obj: Any, index: int) -> Alert:
    where = f"alerts[{index}]."
    if not isinstance(obj, dict):
        raise PayloadError(f"alerts[{index}] must be an object")
    status = _str(obj, "status", where)
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}status must be firing or resolved")
    labels = _kv(obj, "labels", where)
    return Alert(
        status=status,
        labels=labels,
        annotations=_kv(obj, "annotations", where),
        starts_at=parse_time(obj.get("startsAt")),
        ends_at=parse_time(obj.get("endsAt")),
        generator_url=_str(obj, "generatorURL", where),
        fingerprint=_str(obj, "fingerprint", where),
    )


def parse_payload(body: bytes | str) -> Payload:
    """Parse and validate a webhook body; raises :class:`PayloadError` with a short reason."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise PayloadError("payload must be a JSON object")
    version = data.get("version")
    if version != "4":
        raise PayloadError(f"unsupported payload version {clean_text(str(version))[:20]!r}, expected '4'")
    status = _str(data, "status", "")
    if status not in ("firing", "resolved"):
        raise PayloadError("status must be firing or resolved")
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise PayloadError("alerts must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise PayloadError(f"too many alerts ({len(alerts)} > {MAX_ALERTS})")
    truncated = data.get("truncatedAlerts", 0) or 0
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise PayloadError("truncatedAlerts must be a non-negative integer")
    return Payload(
        status=status,
        receiver=_str(data, "receiver", ""),
        group_key=_str(data, "groupKey", ""),
        truncated_alerts=truncated,
        group_labels=_kv(data, "groupLabels", ""),
        common_labels=_kv(data, "commonLabels", ""),
        common_annotations=_kv(data, "commonAnnotations", ""),
        external_url=_str(data, "externalURL", ""),
        alerts=tuple(_alert(a, i) for i, a in enumerate(alerts)),
        raw=data,
    )
