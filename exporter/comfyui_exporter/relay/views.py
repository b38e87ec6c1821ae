"""What a robot message says about one alert, and which of it goes first when space runs out.

An alert's *detail* comes from its own labels and annotations first (the exporter's event alerts carry
``exception_type``, ``exception_message``, ``prompt_id``/``prompt_ids``, ``node_id``, ``failures_url``),
and only for what they lack from the exporter's ``/failures`` lookup (:class:`FailureDetail`, matched
to the alert by instance, error type and prompt id; an alert without ``error_type`` gets none).

Merged messages must fit one robot message, so :data:`DROP_ORDER` lists what is cut, least important
first, uniformly for every alert of the message; only when even the last level does not fit are
alerts left out (counted, and all in the journal). What is never cut while an alert is listed: its
alertname, severity and status, instance (``comfyui``), error type, node type and exception type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .failures import FailureDetail
from .payload import Alert, Payload, oneline, short

# Cut in this order (cumulative): level k applies the first k cuts. The order is the design: links
# that need the internal network and times are the cheapest loss, then prose (the summary and
# description repeat what the structured lines say), then the extra prompt ids, then the links a
# person acts on (silence, runbook, failures: last, because they lead to everything that was cut).
DROP_ORDER: tuple[str, ...] = (
    "graph_link",  # Prometheus graph (generatorURL): long, internal address
    "dashboard_link",
    "time",  # started / resolved time
    "description_short",  # description cut to 160 characters
    "description",
    "summary_short",  # summary cut to 80 characters
    "summary",
    "prompt_ids_first",  # a folded burst keeps only its newest prompt id (+ the count)
    "prompt_ids",
    "exception_short",  # exception message cut to 100 characters (the type always stays)
    "silence_link",
    "runbook_link",
    "failures_link",
)
LEVELS = len(DROP_ORDER) + 1  # 0 = nothing cut ... LEVELS - 1 = everything in DROP_ORDER cut


@dataclass(frozen=True)
class Detail:
    """The failure facts of one alert, from its annotations or (fallback) the exporter lookup."""

    node_type: str = ""
    node_id: str = ""
    exception_type: str = ""
    exception_message: str = ""
    prompt_ids: tuple[str, ...] = ()
    count: str = ""
    failures_url: str = ""

    @property
    def exception(self) -> str:
        t, m = self.exception_type, self.exception_message
        return f"{t}: {m}" if t and m else (t or m)


def detail_of(alert: Alert, failure: FailureDetail | None) -> Detail:
    """Annotations win over the lookup field by field; a lookup is used only for alerts with error_type."""
    ann = alert.annotations
    if not alert.error_type:
        failure = None
    ids_text = ann.get("prompt_ids") or ann.get("prompt_id") or (failure.prompt_id if failure else "")
    ids = tuple(p.strip() for p in ids_text.split(",") if p.strip())
    exc_type, exc_msg = ann.get("exception_type", ""), ann.get("exception_message", "")
    if not (exc_type or exc_msg) and failure is not None:
        exc_type, _, exc_msg = failure.exception.partition(": ")
        if not exc_msg and " " in exc_type:  # a message without a type
            exc_type, exc_msg = "", failure.exception
    return Detail(
        node_type=alert.labels.get("node_type", "") or (failure.node_type if failure else ""),
        node_id=ann.get("node_id", "") or (failure.node_id if failure else ""),
        exception_type=oneline(exc_type),
        exception_message=oneline(exc_msg),
        prompt_ids=ids,
        count=ann.get("count", ""),
        failures_url=ann.get("failures_url", ""),
    )


def alert_view(
    alert: Alert,
    payload: Payload,
    detail: Detail,
    *,
    icon: str,
    starts_at: str,
    ends_at: str,
    silence: str,
    level: int = 0,
    field_limit: int | None = None,
) -> dict[str, Any]:
    """Template view of one alert with the first ``level`` cuts of :data:`DROP_ORDER` applied.

    ``field_limit`` additionally caps summary/description (single messages shorten pathological
    texts this way); ``silence`` is the group's silence link ("" for single messages, which have one
    for the whole group).
    """
    cut = set(DROP_ORDER[:level])
    ann, common = alert.annotations, payload.common_annotations
    limit = field_limit or 10**9
    summary = ann.get("summary") or common.get("summary", "")
    description = ann.get("description") or common.get("description", "")
    if "summary" in cut:
        summary = ""
    elif "summary_short" in cut:
        summary = short(summary, 80)
    if "description" in cut:
        description = ""
    elif "description_short" in cut:
        description = short(description, 160)
    ids = detail.prompt_ids
    if "prompt_ids" in cut:
        ids = ()
    elif "prompt_ids_first" in cut:
        ids = ids[:1]
    message = detail.exception_message
    if "exception_short" in cut:
        message = short(message, 100)
    exception = (
        f"{detail.exception_type}: {message}"
        if detail.exception_type and message
        else (detail.exception_type or message)
    )
    links: list[dict[str, str]] = []
    for kind, url, key in (
        ("failures", detail.failures_url, "failures_link"),
        ("runbook", ann.get("runbook_url") or common.get("runbook_url", ""), "runbook_link"),
        ("silence", silence, "silence_link"),
        ("dashboard", ann.get("dashboard_url") or common.get("dashboard_url", ""), "dashboard_link"),
        ("graph", alert.generator_url, "graph_link"),
    ):
        if url and key not in cut and all(link["url"] != url for link in links):
            links.append({"kind": kind, "url": url})  # one link per URL (event alerts: graph = failures)
    total = len(detail.prompt_ids)
    try:
        count = int(detail.count) if detail.count else total
    except ValueError:
        count = total
    return {
        "name": alert.name or "?",
        "status": alert.status,
        "severity": alert.severity,
        "icon": icon,
        "instance": alert.instance,
        "error_type": alert.error_type,
        "node": detail.node_type,
        "node_id": detail.node_id,
        "exception": short(exception, limit) if field_limit else exception,
        "prompt_ids": list(ids),
        "prompt_count": count,
        "prompts_omitted": max(0, count - len(ids)) if ids else 0,
        "summary": short(summary, limit),
        "description": short(description, limit),
        "starts_at": "" if "time" in cut else starts_at,
        "ends_at": "" if "time" in cut else ends_at,
        "links": links,
        "labels": alert.labels,
        # kept for user templates written against the previous view
        "failure": {"node_type": detail.node_type, "exception": exception}
        if (detail.node_type or exception)
        else None,
    }
