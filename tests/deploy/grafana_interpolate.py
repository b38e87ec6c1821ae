"""Substitute Grafana template variables in a Prometheus query the way Grafana does.

A port of the parts of Grafana that matter for our dashboards:

* ``TemplateSrv.replace`` variable syntax: ``$var``, ``${var}``, ``${var:format}``, ``[[var]]``,
  ``[[var:format]]``; a custom "All" value (``allValue``) is inserted raw, unformatted.
* the Prometheus data source's default formatter ``interpolateQueryExpr``: a variable that is neither
  multi nor includeAll is only quote-escaped; otherwise each value is regex-escaped for use inside a
  PromQL string (``prometheusSpecialRegexEscape``: ``.`` becomes ``\\\\.``) and several values become
  ``(a|b)``.
* explicit formats ``regex`` (``(a|b)``, single-backslash escaping), ``pipe``, ``csv``, ``raw``, ``glob``,
  ``doublequote``, ``singlequote``.
* built-ins: ``$__interval`` / ``$__interval_ms`` (range / max data points, rounded with
  ``rangeUtil.roundInterval``, never below the data source's scrape interval), ``$__rate_interval``
  (``max($__interval + scrape, 4 * scrape)`` seconds), ``$__range`` / ``$__range_s`` / ``$__range_ms``,
  ``$__from`` / ``$__to`` (epoch ms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# TemplateSrv's variable regex (public/app/features/variables/utils.ts, variableRegex).
VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


@dataclass
class Var:
    name: str
    values: list[str] = field(default_factory=list)
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    is_all: bool = False  # the user picked "All"

    @property
    def value(self) -> str | list[str]:
        if self.is_all and self.all_value is not None:
            return self.all_value
        if self.multi or self.is_all:
            return list(self.values)
        return self.values[0] if self.values else ""


def prometheus_regular_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def prometheus_special_regex_escape(value: str) -> str:
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def escape_regex(value: str) -> str:
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def _prometheus_default(value: str | list[str], var: Var) -> str:
    if not var.multi and not var.include_all:
        if isinstance(value, list):
            value = ",".join(value)
        return prometheus_regular_escape(value)
    if isinstance(value, str):
        return prometheus_special_regex_escape(value)
    escaped = [prometheus_special_regex_escape(v) for v in value]
    if len(escaped) == 1:
        return escaped[0]
    return "(" + "|".join(escaped) + ")"


def _format(value: str | list[str], fmt: str) -> str:
    values = [value] if isinstance(value, str) else value
    if fmt == "regex":
        escaped = [escape_regex(v) for v in values]
        if isinstance(value, str) or len(escaped) == 1:
            return escaped[0]
        return "(" + "|".join(escaped) + ")"
    if fmt == "pipe":
        return "|".join(values)
    if fmt in {"csv", "raw"}:
        return ",".join(values)
    if fmt == "glob":
        return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    raise ValueError(f"unsupported Grafana variable format {fmt!r}")


_INTERVAL_STEPS_MS = [
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (32400000, 21600000),
    (86400000, 43200000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
]


def round_interval_ms(interval_ms: float) -> int:
    """``rangeUtil.roundInterval``."""
    for below, rounded in _INTERVAL_STEPS_MS:
        if interval_ms < below:
            return rounded
    return 31536000000


def seconds_to_hms(seconds: float) -> str:
    """``rangeUtil.secondsToHms``: 90 -> '1m', 15 -> '15s', 0.5 -> '500ms'."""
    units = [(31536000, "y"), (604800, "w"), (86400, "d"), (3600, "h"), (60, "m")]
    for size, suffix in units:
        n = int(seconds // size)
        if n:
            return f"{n}{suffix}"
    if int(seconds):
        return f"{int(seconds)}s"
    ms = int(seconds * 1000)
    return f"{ms}ms" if ms else "less than a millisecond"


@dataclass
class TimeContext:
    """What Grafana knows when it runs a panel's query."""

    from_s: float
    to_s: float
    scrape_interval_s: float = 15.0  # the data source's "Scrape interval" (jsonData.timeInterval)
    max_data_points: int = 1000  # Grafana uses the panel's width in pixels

    @property
    def interval_ms(self) -> int:
        ms = round_interval_ms((self.to_s - self.from_s) * 1000 / self.max_data_points)
        return max(ms, int(self.scrape_interval_s * 1000))

    @property
    def rate_interval_s(self) -> int:
        interval_s = self.interval_ms / 1000
        return int(max(interval_s + self.scrape_interval_s, 4 * self.scrape_interval_s))

    def builtins(self) -> dict[str, str]:
        range_ms = round((self.to_s - self.from_s) * 1000)
        range_s = round(range_ms / 1000)
        return {
            "__interval": seconds_to_hms(self.interval_ms / 1000),
            "__interval_ms": str(self.interval_ms),
            "__rate_interval": f"{self.rate_interval_s}s",
            "__rate_interval_ms": str(self.rate_interval_s * 1000),
            "__range": f"{range_s}s",
            "__range_s": str(range_s),
            "__range_ms": str(range_ms),
            "__from": str(int(self.from_s * 1000)),
            "__to": str(int(self.to_s * 1000)),
        }


def interpolate(expr: str, variables: dict[str, Var], time: TimeContext) -> str:
    """Replace every variable reference in ``expr``; an unknown variable raises KeyError, as a test should."""
    builtins = time.builtins()

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return builtins[name]
        var = variables[name]
        if var.is_all and var.all_value is not None and fmt not in {"text", "percentencode"}:
            return var.all_value
        value = var.value
        if fmt:
            return _format(value, fmt)
        return _prometheus_default(value, var)

    return VARIABLE_RE.sub(repl, expr)


def references(expr: str) -> set[str]:
    return {m.group(1) or m.group(2) or m.group(4) for m in VARIABLE_RE.finditer(expr)}
